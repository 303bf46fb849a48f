"""One prepared check of the CUDA paths, for when a GPU machine is lent (budget: < 10 minutes).

Runs, each under its own time limit, and prints one table at the end:

1. ``score``: our chunked scorer on CUDA vs faiss ``knn_gpu`` (or a dense torch top-1 when faiss has no
   GPU build) — 21,841 classes × 128-d, ``--queries`` queries; top-1 agreement on **every** query;
2. ``ddp``: a CADA-VAE DDP training loop over NCCL, one process per GPU, fixed steps at D=1280, batch 128;
3. ``extract``: feature extraction of the 1,000 sample images with ``device=cuda``;
4. ``precision``: the same images at fp32 and at ``--precision auto`` (bf16 or fp16), decoded by CPU tasks
   and by ``--decode gpu`` (nvJPEG): images/s and the smallest cosine against fp32;
5. ``scale``: ``benchmarks/imagenet_scale.py --fractions 0.1 1.0`` with whatever time is left.

    python benchmarks/gpu_check.py                     # on the GPU machine
    python benchmarks/gpu_check.py --device cpu --dry-run   # tiny sizes on CPU: checks the script itself

The last line is ``ratio: <our CUDA scorer queries/s ÷ faiss knn_gpu (or dense torch) queries/s>``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def check_score(device: str, queries: int) -> dict:
    import torch

    from zsl_scale.scoring.kernels import faiss_topk
    from zsl_scale.scoring.score import Scorer, prototype_table

    rng = np.random.default_rng(0)
    classes, dim, batch = 21_841, 128, 262_144
    w = rng.standard_normal((classes, dim), dtype=np.float32)
    scorer = Scorer(prototype_table([str(i) for i in range(classes)], w), k=1, device=device)
    ours = ref = 0.0
    agree = 0
    try:
        import faiss

        use_faiss = device == "cuda" and hasattr(faiss, "knn_gpu") and faiss.get_num_gpus() > 0
    except ImportError:
        use_faiss = False
    wt = torch.from_numpy(w).to(device)
    for lo in range(0, queries, batch):
        q = rng.standard_normal((min(batch, queries - lo), dim), dtype=np.float32)
        t0 = time.perf_counter()
        got = scorer.score(q).indices[:, 0]
        ours += time.perf_counter() - t0
        t0 = time.perf_counter()
        if use_faiss:
            want = faiss_topk(q, w, None, 1, use_gpu=True)[1][:, 0]
        else:
            want = (torch.from_numpy(q).to(device) @ wt.T).argmax(1).cpu().numpy()
        ref += time.perf_counter() - t0
        agree += int((got == want).sum())
    return {"rows": queries, "seconds": ours, "baseline_seconds": ref, "agree": agree / queries,
            "baseline": "faiss knn_gpu" if use_faiss else "dense torch"}


def _ddp_worker(rank: int, world: int, port: int, device: str, steps: int, out: str) -> None:
    import torch
    import torch.distributed as dist

    from zsl_scale.cada import CadaVae, make_optimizer, paper_config, train_step, warmup_weights
    from zsl_scale.core import TrainConfig
    from zsl_scale.distributed.trainer import _ddp_loss, _StepModule, _wrap  # the trainer's own DDP step

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("nccl" if device == "cuda" else "gloo", rank=rank, world_size=world)
    dev = torch.device(f"cuda:{rank}" if device == "cuda" else "cpu")
    if device == "cuda":
        torch.cuda.set_device(dev)
    torch.manual_seed(0)
    cfg = TrainConfig(batch_size=128)
    vae = CadaVae(paper_config(1280, 512, imagenet=True)).to(dev)
    net = _wrap(_StepModule(vae), dev)
    opt = make_optimizer(vae, cfg)
    gen = torch.Generator().manual_seed(rank)
    per = cfg.batch_size // world
    x, c = torch.rand(per, 1280, generator=gen).to(dev), torch.randn(per, 512, generator=gen).to(dev)
    weights = warmup_weights(30, cfg)
    t0 = 0.0
    for step in range(steps + 2):
        if step == 2:  # two warm-up steps (cuDNN/NCCL set-up)
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        eps = torch.randn(len(vae.names), per, 1, generator=gen).to(dev)
        train_step(net, opt, {"image": x, "class": c, "_eps": eps}, weights, loss_fn=_ddp_loss)
    if device == "cuda":
        torch.cuda.synchronize()
    if rank == 0:
        Path(out).write_text(json.dumps({"seconds": time.perf_counter() - t0, "world": world}))
    dist.barrier()  # leave together (see distributed.trainer._spawned)
    dist.destroy_process_group()


def check_ddp(device: str, steps: int) -> dict:
    import socket

    import torch
    import torch.multiprocessing as mp

    world = max(1, torch.cuda.device_count()) if device == "cuda" else 2
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "ddp.json")
        mp.spawn(_ddp_worker, args=(world, port, device, steps, out), nprocs=world, join=True)
        res = json.loads(Path(out).read_text())
    return {"rows": steps * 128, "seconds": res["seconds"], "world": res["world"]}


def check_extract(device: str, limit: int | None) -> dict:
    from zsl_scale.core import shared_data_dir
    from zsl_scale.features import ExtractOptions, extract_features

    images = shared_data_dir() / "imagenet-samples"
    if not images.exists():
        return {"skipped": f"{images} not found"}
    with tempfile.TemporaryDirectory() as tmp:
        src = images
        if limit:
            src = Path(tmp) / "list.txt"
            src.write_text("".join(f"{p}\t{p.parent.name}\n" for p in sorted(images.rglob("*.JPEG"))[:limit]))
        t0 = time.perf_counter()
        summary = extract_features(src, Path(tmp) / "shards", ExtractOptions(device=device, batch_size=64,
                                                                              workers=1, progress_interval_s=1e9))
        rows = getattr(summary, "rows", None) or getattr(summary, "images", 0)
    return {"rows": int(rows), "seconds": time.perf_counter() - t0}


def check_extract_precision(device: str, limit: int | None) -> dict:
    """The sample images at fp32, then ``auto`` precision (bf16 / fp16 on CUDA) with CPU-task decode and with
    ``--decode gpu`` (nvJPEG; skipped where torchvision does not import): images/s each, and the smallest
    per-image cosine of each set against fp32 (docs/features.md "Precision"; GPU-decode tolerance 0.99)."""
    from zsl_scale.core import shared_data_dir
    from zsl_scale.features import ExtractOptions, extract_features, read_feature_manifest
    from zsl_scale.features.store import feature_matrix, iter_feature_batches

    images = shared_data_dir() / "imagenet-samples"
    if not images.exists():
        return {"skipped": f"{images} not found"}
    runs = [("fp32", "auto"), ("auto", "auto"), ("auto", "gpu")]
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        src = images
        if limit:
            src = Path(tmp) / "list.txt"
            src.write_text("".join(f"{p}\t{p.parent.name}\n" for p in sorted(images.rglob("*.JPEG"))[:limit]))
        feats = {}
        for precision, decode in runs:
            name = f"{precision}/{decode}"
            dest = Path(tmp) / name.replace("/", "-")
            t0 = time.perf_counter()
            try:
                s = extract_features(src, dest, ExtractOptions(device=device, batch_size=64, dtype="float32",
                                                               precision=precision, decode=decode,
                                                               progress_interval_s=1e9))
            except Exception as exc:  # e.g. no torchvision for --decode gpu: report, keep the other numbers
                out[name] = f"{type(exc).__name__}: {exc}"[:160]
                continue
            got = read_feature_manifest(dest)["precision"]["precision"]
            feats[name] = np.concatenate([feature_matrix(b) for b in iter_feature_batches(dest)]).astype(np.float64)
            out[name] = f"{got}: {s.rows / (time.perf_counter() - t0):.0f} images/s"
        ref = feats.get("fp32/auto")
        for name, x in feats.items():
            if ref is not None and name != "fp32/auto":
                cos = (x * ref).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(ref, axis=1))
                out[name] += f", min cosine vs fp32 {cos.min():.5f}"
    return {"result": out}


def check_scale(budget_s: float, fractions: list[str]) -> dict:
    cmd = [sys.executable, str(HERE / "imagenet_scale.py"), "--fractions", *fractions]
    import signal

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=max(10.0, budget_s))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # its stage subprocesses too (they share its new session)
        proc.communicate()
        return {"skipped": f"did not finish in {budget_s:.0f} s"}
    print(stdout, stderr[-2000:] if proc.returncode else "", sep="")
    last = stdout.strip().splitlines()[-1] if stdout.strip() else "no output"
    return {"result": last}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--dry-run", action="store_true", help="tiny sizes (a CPU check of the script)")
    ap.add_argument("--budget", type=float, default=540.0, help="seconds for all checks together")
    args = ap.parse_args()
    start = time.perf_counter()
    dry = args.dry_run
    checks = {
        "score": lambda: check_score(args.device, 20_000 if dry else 1_000_000),
        "ddp": lambda: check_ddp(args.device, 3 if dry else 200),
        "extract": lambda: check_extract(args.device, 8 if dry else None),
        "precision": lambda: check_extract_precision(args.device, 8 if dry else None),
    }
    rows = {}
    for name, fn in checks.items():
        t0 = time.perf_counter()
        try:
            rows[name] = fn()
        except Exception as exc:  # one failing check must not hide the others' numbers
            rows[name] = {"error": f"{type(exc).__name__}: {exc}"[:200]}
        rows[name]["wall"] = time.perf_counter() - t0
    left = args.budget - (time.perf_counter() - start)
    rows["scale"] = check_scale(left, ["0.0005", "0.002"] if dry else ["0.1", "1.0"])
    print(f"# gpu_check on {args.device}{' (dry run)' if dry else ''}")
    print(f"{'check':8s} {'rows':>9s} {'seconds':>8s} {'rows/s':>10s}  notes")
    for name, r in rows.items():
        if "seconds" in r:
            notes = {k: v for k, v in r.items() if k not in ("rows", "seconds", "wall")}
            print(f"{name:8s} {r['rows']:9d} {r['seconds']:8.2f} {r['rows'] / r['seconds']:10.0f}  {notes}")
        else:
            print(f"{name:8s} {'':>9s} {'':>8s} {'':>10s}  {r}")
    s = rows["score"]
    ratio = s["baseline_seconds"] / s["seconds"] if "seconds" in s else float("nan")
    print(f"ratio: {ratio:.3f}")


if __name__ == "__main__":
    main()
