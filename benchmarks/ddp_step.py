"""Where a 2-worker DDP step's time goes: forward, backward (+ all-reduce), optimizer — and the ceiling.

    .venv/bin/python benchmarks/ddp_step.py [--dim 1280] [--batch 128] [--steps 30]

Steps of the real distributed step module (``zsl_scale.distributed.trainer``: CADA-VAE loss with the
step's shared noise, DDP with the SUM comm hook, amsgrad Adam) on in-memory rows, one torch thread per
process, gloo over loopback. Three settings with the same global batch:

* 1 process, the whole batch — the baseline;
* 2 processes, half the batch each, **no all-reduce** (each trains its own copy): the ceiling of any
  communication scheme on this machine, since it pays only for compute and for the two processes
  sharing caches, memory bandwidth and cores;
* 2 DDP processes (gloo), half the batch each, all-reduce of the summed gradients in the backward pass.

Last line: ``ratio: <1-process step ÷ 2-DDP-process step>`` (2 is perfect scaling; the ceiling row says
what this machine allows).
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from zsl_scale.cada import CadaVae, make_optimizer, paper_config
from zsl_scale.core.config import TrainConfig
from zsl_scale.distributed.trainer import _StepModule, _wrap


def _worker(rank: int, world: int, sync: bool, args: argparse.Namespace, port: int, out: mp.Queue) -> None:
    torch.set_num_threads(1)
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(0)
    vae = CadaVae(paper_config(args.dim, 32))
    optimizer = make_optimizer(vae, TrainConfig())
    module = _StepModule(vae)
    net = _wrap(module, torch.device("cpu")) if sync else module
    rows = args.batch // world
    gen = torch.Generator().manual_seed(rank)
    batch = {"image": torch.rand(rows, args.dim, generator=gen), "class": torch.rand(rows, 32, generator=gen)}
    eps = torch.randn(2, rows, 1, generator=gen)
    spent = {"forward": 0.0, "backward": 0.0, "optimizer": 0.0}
    for step in range(args.steps + 5):  # 5 warm-up steps
        t0 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = net(dict(batch), 0.25, 2.37, 8.13, eps)[0]
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        optimizer.step()
        t3 = time.perf_counter()
        if step >= 5:
            spent["forward"] += t1 - t0
            spent["backward"] += t2 - t1
            spent["optimizer"] += t3 - t2
    if rank == 0:
        out.put({k: 1000 * v / args.steps for k, v in spent.items()})
    if world > 1:
        dist.barrier()  # leave together (see distributed.trainer._spawned)
        dist.destroy_process_group()


def measure(world: int, sync: bool, args: argparse.Namespace, port: int) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(r, world, sync, args, port, out)) for r in range(world)]
    for p in procs:
        p.start()
    result = out.get()
    for p in procs:
        p.join()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=1280)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args()
    port = 29400 + os.getpid() % 400
    rows = [("1 process, whole batch", measure(1, False, args, port)),
            ("2 processes, no all-reduce (ceiling)", measure(2, False, args, port + 1)),
            ("2 DDP processes (gloo)", measure(2, True, args, port + 2))]
    base = sum(rows[0][1].values())
    print(f"CADA-VAE step, D={args.dim}, global batch {args.batch}, 1 torch thread per process, ms per step")
    print(f"{'setting':<38}{'forward':>9}{'backward':>10}{'optimizer':>11}{'total':>8}{'speed-up':>10}")
    for name, r in rows:
        total = sum(r.values())
        print(f"{name:<38}{r['forward']:>9.1f}{r['backward']:>10.1f}{r['optimizer']:>11.1f}{total:>8.1f}"
              f"{base / total:>9.2f}×")
    print(f"ratio: {base / sum(rows[2][1].values()):.2f}")


if __name__ == "__main__":
    main()
