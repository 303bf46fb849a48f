"""Data-parallel CADA-VAE training: Ray Train ``TorchTrainer`` (DDP), or a plain process (group).

One training loop, :func:`vae_worker`, runs in every worker. It streams that worker's share of each
global batch from the feature shards (:mod:`zsl_scale.distributed.streaming`), pairs every image feature with
its class embedding and calls the shared :func:`zsl_scale.cada.train.train_step` through a
``DistributedDataParallel`` wrapper (gloo on CPU, NCCL on GPU, chosen at run time).

Image features are min-max scaled with statistics fit on the training shards only (one streaming
pass on the driver, :mod:`zsl_scale.cada.scaling`); the statistics are part of the run's
fingerprint and of every checkpoint, and later stages (latents, classifier) apply the same ones.

Why the result does not depend on the worker count (up to float summation order):

* the global batch is the same set of rows for any worker count (virtual streams, see streaming.py);
* every row's reparametrisation noise is drawn from ``(seed, epoch, step)`` for the whole global batch
  and sliced by row position, so no RNG stream depends on the worker count;
* the CADA-VAE loss is a *sum* over the batch, so gradients are all-reduced with a SUM comm hook
  (DDP's default averages, which would divide the step's gradient by W and change Adam's updates);
* ``scale.exact_sum`` removes the float summation order too (:mod:`zsl_scale.distributed.exact`: one
  gradient per stream, summed in stream order on every worker): bitwise identical for any worker count.

Runners, dispatched by :func:`zsl_scale.distributed.runners.fit_vae`: :func:`fit_ray` (``TorchTrainer`` with
``ScalingConfig``, ``RunConfig(name, storage_path)``, ``FailureConfig``; resume = re-run the same name),
:func:`fit_spawn` (``mp.spawn`` over gloo) and :func:`fit_local` (no Ray: one process, or a torch.distributed
group set up by the caller).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from zsl_scale.cada import (
    CadaVae,
    FeatureScaler,
    LossTerms,
    LossWeights,
    ModelConfig,
    cada_loss,
    fit_feature_scaler,
    make_optimizer,
    paper_config,
    train_step,
    warmup_weights,
)
from zsl_scale.core import ConfigError, DataError, ZslError, torch_threads
from zsl_scale.distributed.config import DistJobConfig
from zsl_scale.distributed.exact import exact_step, local_stream_slices, ordered_sum
from zsl_scale.distributed.state import Context, LocalContext, finish_run, preflight_run_dir, rng_states
from zsl_scale.distributed.state import set_rng_states as restore_rng
from zsl_scale.distributed.streaming import (
    ClassTable,
    FeatureSource,
    StreamPlan,
    iter_worker_batches,
    open_features,
    prefetch,
    step_noise,
)


@dataclass
class VaeJob:
    """Everything a worker needs, resolved on the driver (small enough to ship to every worker)."""

    cfg: DistJobConfig
    model_cfg: ModelConfig
    source: FeatureSource
    classes: ClassTable
    scaler: FeatureScaler  # min-max statistics of the training features (fit on the driver)
    fault: dict[str, Any] | None = None  # tests only: {"epoch", "rank", "marker"} → that worker dies once

    @property
    def streams(self) -> int:
        return self.cfg.scale.streams or self.cfg.scale.workers

    def plan(self) -> StreamPlan:
        s = self.cfg.scale
        block = max(1, min(s.block_rows, self.source.num_rows // (self.streams * 4) or 1))
        return StreamPlan(self.source, self.cfg.train.batch_size, self.streams, block, self.cfg.seed, s.group_blocks)

    def fingerprint(self) -> dict[str, Any]:
        """What fixes the numbers: all but the epoch count (a run may be extended) and the worker count."""
        plan = self.plan()
        return {
            "model": self.model_cfg.model_dump(mode="json"),
            "train": self.cfg.train.model_dump(mode="json", exclude={"epochs"}),
            "seed": self.cfg.seed,
            **({"exact_sum": True} if self.cfg.scale.exact_sum else {}),  # absent when off: older checkpoints match
            "data": {"streams": plan.streams, "block_rows": plan.block_rows, "group_blocks": plan.group_blocks,
                     **self.source.fingerprint()},
            "classes": self.classes.fingerprint(),
            "scaler": self.scaler.fingerprint(),
        }


def prepare_job(cfg: DistJobConfig, source: FeatureSource, classes: ClassTable) -> VaeJob:
    """Validate data against the config on the driver, before any worker (or Ray) starts."""
    if not source.class_counts:
        raise DataError(f"{source.directory}: no rows")
    classes.require(list(source.class_counts))
    streams = cfg.scale.streams or cfg.scale.workers
    if streams % cfg.scale.workers:
        raise ConfigError(f"scale.streams={streams} must be a multiple of scale.workers={cfg.scale.workers}")
    if cfg.train.batch_size < streams:
        raise ConfigError(f"train.batch_size={cfg.train.batch_size} is smaller than the {streams} data streams")
    table = classes.subset([w for w in classes.wnids if w in source.class_counts])  # only training classes ship
    model_cfg = paper_config(source.dim, table.dim, imagenet=cfg.model.imagenet, reparam=cfg.model.reparam,
                             init_gain=cfg.model.init_gain)
    scaler = fit_feature_scaler(source.files, source.dim)  # one streaming pass, training shards only
    return VaeJob(cfg, model_cfg, source, table, scaler)


class _StepModule(nn.Module):
    """DDP's unit of work: the CADA-VAE loss of this worker's rows, with their slice of the global noise.

    Quacks like :class:`CadaVae` for :func:`cada_loss` (``names``, ``encode``, ``decode``,
    ``reparameterize``), except that the noise comes from the step's precomputed ε instead of an RNG.
    """

    def __init__(self, vae: CadaVae) -> None:
        super().__init__()
        self.vae = vae
        self.names = vae.names
        self._eps: list[Tensor] = []

    def encode(self, name: str, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.vae.encode(name, x)

    def decode(self, name: str, z: Tensor) -> Tensor:
        return self.vae.decode(name, z)

    def reparameterize(self, mu: Tensor, logvar: Tensor, noise: bool = True, generator: Any = None) -> Tensor:
        return mu + self.vae.std(logvar) * self._eps.pop(0) if noise else mu

    def forward(self, batch: dict[str, Tensor], beta: float, gamma: float, delta: float, eps: Tensor):
        self._eps = list(eps.unbind(0))
        t = cada_loss(self, batch, LossWeights(beta, gamma, delta))
        return t.total, t.recon, t.kl, t.cross, t.distance


def _ddp_loss(net: nn.Module, batch: dict[str, Tensor], weights: LossWeights, generator: Any = None) -> LossTerms:
    return LossTerms(*net(batch, weights.beta, weights.gamma, weights.delta, batch.pop("_eps")))


def sum_allreduce_hook(state, bucket):  # unannotated: DDP checks real annotations, and this module's are strings
    """All-reduce SUM: the global-batch loss is a sum of per-row losses, so are its gradients."""
    return dist.all_reduce(bucket.buffer(), async_op=True).get_future().then(lambda fut: fut.value()[0])


def _wrap(module: _StepModule, device: torch.device) -> nn.Module:
    if not (dist.is_available() and dist.is_initialized()):
        return module
    ids = [device] if device.type == "cuda" else None
    net = nn.parallel.DistributedDataParallel(module, device_ids=ids)
    net.register_comm_hook(None, sum_allreduce_hook)
    return net


def vae_worker(job: VaeJob, ctx: Context) -> list[dict[str, Any]]:
    """The training loop of one worker; returns the per-epoch history (identical on every rank).

    It runs with ``scale.threads_per_worker`` torch threads and then restores the caller's count: under the
    ``local`` runner the worker *is* the driver, whose later stages must keep their own threads.
    """
    with torch_threads(job.cfg.scale.threads_per_worker):
        return _train(job, ctx)


def _train(job: VaeJob, ctx: Context) -> list[dict[str, Any]]:
    cfg, device = job.cfg, ctx.device
    torch.manual_seed(cfg.seed)  # same initial weights on every rank (DDP also broadcasts rank 0's)
    vae = CadaVae(job.model_cfg).to(device)
    optimizer = make_optimizer(vae, cfg.train)
    fingerprint, start, history = job.fingerprint(), 0, []
    state = ctx.latest_state(fingerprint)
    if state is not None:
        vae.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start, history = state["epoch"], state["history"]
        restore_rng(state["rng"])
    plan, classes = job.plan(), torch.from_numpy(job.classes.vectors).to(device)
    exact, distributed = cfg.scale.exact_sum, dist.is_available() and dist.is_initialized()
    if exact and distributed:  # no DDP wrapper (and so no broadcast): start every rank from rank 0's weights
        for tensor in vae.state_dict().values():
            dist.broadcast(tensor, 0)
    net = _StepModule(vae) if exact else _wrap(_StepModule(vae), device)
    slices = local_stream_slices(plan.rows_per_stream(), ctx.rank, ctx.world)
    stats = job.scaler.torch_stats(device)
    modalities, gbatch = len(vae.names), cfg.train.batch_size
    for epoch in range(start, cfg.train.epochs):
        t0, weights = time.perf_counter(), warmup_weights(epoch, cfg.train)
        sums = torch.zeros((job.streams, 5) if exact else (5,), dtype=torch.float64, device=device)
        vae.train()
        steps = 0
        for step, part in enumerate(prefetch(iter_worker_batches(plan, job.classes, epoch, ctx.rank, ctx.world))):
            _maybe_fault(job, epoch, step, ctx.rank)
            eps = step_noise(cfg.seed, epoch, step, modalities, gbatch)[:, torch.from_numpy(part.positions)]
            image = job.scaler.transform_torch(torch.from_numpy(part.features).to(device), stats)
            batch = {"image": image,
                     "class": classes[torch.from_numpy(part.labels).to(device)], "_eps": eps.to(device)}
            if exact:
                sums += exact_step(net, optimizer, batch, weights, slices, _ddp_loss, job.streams, ctx.rank,
                                   ctx.world, precision=cfg.train.precision)
            else:
                t = train_step(net, optimizer, batch, weights, loss_fn=_ddp_loss, precision=cfg.train.precision)
                sums += t.stacked()
            steps += 1
        if exact:
            sums = ordered_sum(sums)  # every rank holds every stream's sums (gathered each step)
        elif distributed:
            dist.all_reduce(sums)
        rows = max(1, steps * gbatch)
        mean = (sums / rows).tolist()
        history.append({"epoch": epoch, "loss": mean[0], "recon": mean[1], "kl": mean[2], "cross": mean[3],
                        "distance": mean[4], "beta": weights.beta, "gamma": weights.gamma, "delta": weights.delta,
                        "rows": steps * gbatch, "seconds": round(time.perf_counter() - t0, 3)})
        state = {"model": vae.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1,
                 "history": history, "rng": rng_states(), "model_config": job.model_cfg.model_dump(mode="json"),
                 "config": cfg.model_dump(mode="json"), "wnids": job.classes.wnids,
                 "scaler": job.scaler.to_extra()}
        ctx.save(state, fingerprint, {"epoch": epoch, "loss": mean[0]}, last=epoch + 1 == cfg.train.epochs)
    return history


def _maybe_fault(job: VaeJob, epoch: int, step: int, rank: int) -> None:
    """Test hook: kill this worker process once, mid-epoch, to exercise recovery."""
    f = job.fault
    if f and f["epoch"] == epoch and f["rank"] == rank and step == 1 and not Path(f["marker"]).exists():
        Path(f["marker"]).write_text(f"{os.getpid()}\n")
        if f.get("hang"):  # stay busy (as a long epoch would) until someone kills this process
            while True:
                time.sleep(1)
        os._exit(17)


def load_job_inputs(cfg: DistJobConfig) -> tuple[FeatureSource, ClassTable]:
    """Open the feature shards and class embeddings named by ``cfg.data``."""
    from zsl_scale.distributed.streaming import load_class_table

    if not cfg.data.features or not cfg.data.embeddings:
        raise ConfigError("data.features and data.embeddings must both be set (or passed as options)")
    return open_features(cfg.data.features), load_class_table(cfg.data.embeddings)


def fit_local(job: VaeJob, rank: int = 0, world: int = 1, device: str = "cpu") -> dict[str, Any]:
    """Train without Ray in this process (rank ``rank`` of an already-initialised process group)."""
    run_dir = Path(job.cfg.scale.storage_path) / job.cfg.name
    if rank == 0:
        _announce(run_dir, preflight_run_dir(run_dir, job.fingerprint()), job)
    if world > 1:
        dist.barrier()
    ctx = LocalContext(run_dir, rank, world, torch.device(device), job.cfg.scale.keep_checkpoints,
                       job.cfg.scale.checkpoint_every_s)
    history = vae_worker(job, ctx)
    summary = _summary(job, history, run_dir / f"checkpoint_epoch_{job.cfg.train.epochs:04d}")
    if rank == 0:
        finish_run(run_dir, history, summary)
    return summary


def _spawned(rank: int, world: int, port: int, job: VaeJob, driver: dict[str, Any] | None = None,
             errors: str | None = None) -> None:
    from zsl_scale.distributed.lifeline import bind_to_driver

    bind_to_driver(driver)  # a killed driver takes its workers with it
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        fit_local(job, rank, world)
        # Leave together: a rank that tears gloo down and exits while a peer still writes files has
        # aborted ("terminate called without an active exception") on a loaded CI machine.
        dist.barrier()
    except ZslError as exc:  # torch.multiprocessing hands the driver only a traceback text: leave the message
        if errors:
            Path(errors, f"rank{rank:04d}.json").write_text(json.dumps({"type": type(exc).__name__,
                                                                         "message": str(exc)}))
        raise
    finally:
        dist.destroy_process_group()


def _spawn_user_error(errors: Path) -> ZslError | None:
    """The user error the lowest failing rank left in ``errors`` (see :func:`_spawned`), if any."""
    from zsl_scale.core import errors as error_types

    for path in sorted(errors.glob("rank*.json")):
        with contextlib.suppress(OSError, ValueError):
            doc = json.loads(path.read_text())
            cls = getattr(error_types, str(doc.get("type")), None)
            return (cls if isinstance(cls, type) and issubclass(cls, ZslError) else ZslError)(str(doc["message"]))
    return None


def fit_spawn(job: VaeJob, world: int) -> dict[str, Any]:
    """``world`` local CPU processes over gloo, without Ray (tests and the CPU benchmark)."""
    import socket

    import torch.multiprocessing as mp

    if world == 1:
        return fit_local(job)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    from zsl_scale.distributed.lifeline import driver_info

    with tempfile.TemporaryDirectory(prefix="zsl-spawn-errors-") as errors:
        try:
            mp.spawn(_spawned, args=(world, port, job, driver_info(), errors), nprocs=world, join=True)
        except Exception as exc:  # ProcessRaisedException holds the worker's traceback as text
            user = _spawn_user_error(Path(errors))
            if user is None:
                raise
            raise user from exc
    run_dir = Path(job.cfg.scale.storage_path) / job.cfg.name
    return json.loads((run_dir / "summary.json").read_text())


def _announce(run_dir: Path, epoch: int, job: VaeJob) -> None:
    """One line on stderr saying whether this run starts or resumes (and from which epoch)."""
    import sys

    total = job.cfg.train.epochs
    state = f"resuming at epoch {epoch} of {total}" if epoch else f"starting, {total} epochs"
    print(f"{job.cfg.name}: {state} ({run_dir})", file=sys.stderr)


def _summary(job: VaeJob, history: list[dict[str, Any]], checkpoint: Any) -> dict[str, Any]:
    return {"name": job.cfg.name, "epochs": len(history), "final_loss": history[-1]["loss"] if history else None,
            "checkpoint": str(checkpoint), "workers": job.cfg.scale.workers, "streams": job.streams,
            "rows": job.source.num_rows, "classes": len(job.classes.wnids)}
