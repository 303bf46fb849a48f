"""The final softmax on Ray Train workers: the bank goes through the object store, the weights come back
as a Ray Train checkpoint.

Like the VAE (:mod:`zsl_scale.distributed.ray_fit`): ``TorchTrainer`` with ``scale.workers`` workers of
``scale.cpus_per_worker`` CPUs (GPUs when the cluster has them and ``scale.device`` allows), a gloo/NCCL
process group, :func:`~zsl_scale.distributed.classifier.train_classifier` on every rank. With
``scale.exact_sum`` the gradient is the stream-ordered sum of ``scale.streams`` per-stream gradients, so
the weights are bitwise those of one worker with the same streams (``tests/distributed/test_classifier.py``);
without it DDP all-reduces and N workers equal one up to float rounding.

The driver builds the bank (one streaming pass over the seen features) and puts it into the object store
once; every worker reads it from there (its own node's copy), not through the driver's process.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from zsl_scale.core import ClassifierConfig, check_resources, init_ray, load_torch_file
from zsl_scale.distributed.classifier import LatentBank, Mode, train_classifier
from zsl_scale.distributed.config import ScaleSettings

WEIGHTS = "classifier.pt"


@dataclass(frozen=True)
class ClassifierTask:
    """One softmax to train: its latent bank, epochs and seed (a job's GZSL and ZSL heads are two tasks)."""

    bank: LatentBank
    epochs: int
    seed: int = 0


Fitted = tuple[nn.Linear, list[dict[str, float]]]


def _worker(config: dict[str, Any]) -> None:
    """One Ray Train rank: train on its part of every global batch, task after task in one worker group (each
    group costs seconds of process start-up); rank 0 reports every task's weights in one checkpoint."""
    import ray
    import ray.train
    import ray.train.torch

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(config["threads"])
    heads = []
    for bank_ref, epochs, seed in config["tasks"]:
        bank: LatentBank = ray.get(bank_ref)
        linear, history = train_classifier(bank, config["cfg"], epochs, mode=config["mode"], seed=seed, rank=rank,
                                           world=world, device=ray.train.torch.get_device(), streams=config["streams"])
        heads.append({"state": {k: v.cpu() for k, v in linear.state_dict().items()}, "history": history})
    with tempfile.TemporaryDirectory(prefix="zsl_cls_") as tmp:
        checkpoint = None
        if rank == 0:
            torch.save({"heads": heads}, Path(tmp) / WEIGHTS)
            checkpoint = ray.train.Checkpoint.from_directory(tmp)
        last = heads[-1]["history"] if heads else []
        ray.train.report({"loss": last[-1]["loss"] if last else 0.0}, checkpoint=checkpoint)


def train_classifiers_ray(
    tasks: list[ClassifierTask],
    cfg: ClassifierConfig,
    scale: ScaleSettings,
    storage: str | Path,
    mode: Mode = "fixed",
) -> list[Fitted]:
    """Train each task's softmax on ``scale.workers`` Ray Train workers, all in one worker group; returns
    ``(linear, history)`` per task like :func:`~zsl_scale.distributed.classifier.train_classifier`.

    ``storage`` (on storage every node shares, like ``scale.storage_path``) holds Ray Train's run folder
    while it trains; it is removed once the weights are read back.
    """
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from zsl_scale.distributed.ray_fit import _use_gpu, _user_error, controller_poll

    streams = None
    if scale.exact_sum:
        streams = scale.streams or scale.workers
    storage = Path(storage).resolve()
    init_ray(scale.address, log_file=storage / "ray.log")
    gpu = _use_gpu(scale.device)
    check_resources(scale.workers, scale.cpus_per_worker, 1.0 if gpu else 0.0, "scale.workers or scale.cpus_per_worker",
                    wait_timeout=scale.wait_timeout, log=lambda line: print(f"classifier: {line}", file=sys.stderr))
    name = ".classifier-ray"
    trainer = TorchTrainer(
        _worker,
        train_loop_config={"tasks": [(ray.put(t.bank), t.epochs, t.seed) for t in tasks], "cfg": cfg, "mode": mode,
                           "streams": streams, "threads": scale.threads_per_worker},
        torch_config=TorchConfig(backend="nccl" if gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=scale.workers, use_gpu=gpu,
                                     resources_per_worker={"CPU": scale.cpus_per_worker}),
        run_config=RunConfig(name=name, storage_path=str(storage),
                             failure_config=FailureConfig(max_failures=scale.max_failures)),
    )
    try:
        with controller_poll(scale.poll_interval_s):
            result = trainer.fit()
        assert result.checkpoint is not None, "rank 0 reports the weights"
        with result.checkpoint.as_directory() as d:
            saved = load_torch_file(Path(d) / WEIGHTS, "classifier checkpoint")
    except Exception as exc:  # Ray wraps worker errors; surface a user error as one line
        raise _user_error(exc) from exc
    finally:
        shutil.rmtree(storage / name, ignore_errors=True)
    fitted = []
    for task, head in zip(tasks, saved["heads"], strict=True):
        linear = nn.Linear(task.bank.mu.shape[1], len(task.bank.wnids))
        linear.load_state_dict(head["state"])
        fitted.append((linear, head["history"]))
    return fitted


def fit_classifiers(
    tasks: list[ClassifierTask],
    cfg: ClassifierConfig,
    scale: ScaleSettings | None,
    storage: str | Path,
    mode: Mode = "fixed",
    device: torch.device | str = "cpu",
) -> list[Fitted]:
    """The softmaxes where the VAE was trained: on Ray Train with ``scale`` (the VAE's scale settings, when it
    ran on Ray), all tasks in one worker group, else one after another in this process on ``device``."""
    if scale is None:
        return [train_classifier(t.bank, cfg, t.epochs, mode=mode, seed=t.seed, device=device) for t in tasks]
    return train_classifiers_ray(tasks, cfg, scale, storage, mode=mode)


def fit_classifier(
    bank: LatentBank,
    cfg: ClassifierConfig,
    epochs: int,
    scale: ScaleSettings | None,
    storage: str | Path,
    mode: Mode = "fixed",
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> Fitted:
    """One softmax where the VAE was trained (:func:`fit_classifiers` with one task)."""
    return fit_classifiers([ClassifierTask(bank, epochs, seed)], cfg, scale, storage, mode=mode, device=device)[0]
