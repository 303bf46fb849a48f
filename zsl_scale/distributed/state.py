"""Checkpoints, run folders and loss logs of distributed training, with or without Ray.

A checkpoint is a folder holding ``state.pt`` (model, optimiser, next epoch, loss history, RNG states),
``meta.json`` (the run's fingerprint and epoch: cheap to read without unpickling tensors) and
``losses.csv``. Ray Train persists such folders under ``<storage>/<name>/checkpoint_*``; the local
(no-Ray) path writes the same folders under ``<storage>/<name>/checkpoint_epoch_NNNN`` atomically
(write to a temporary folder, then rename), so a kill can never leave a half-written checkpoint.

The *fingerprint* is everything that determines the numbers a run produces except its length and
its worker count. Resuming from a checkpoint with another fingerprint is refused — by the driver
before any worker starts, and again by the workers — because silently continuing a different
experiment would produce numbers that belong to neither.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from zsl_scale.core import (
    ConfigError,
    DataError,
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    load_torch_file,
)

STATE_FILE, META_FILE, LOSS_FILE, CURVE_FILE = "state.pt", "meta.json", "losses.csv", "loss_curve.png"
FORMAT = "zsl-scale/dist-checkpoint"
# 2: image features are min-max scaled; the statistics are in the state and fingerprint.
# 3: the state is plain data (numpy's RNG state as a tensor), loadable with ``weights_only=True``.
FORMAT_VERSION = 3
LOSS_COLUMNS = ("epoch", "loss", "recon", "kl", "cross", "distance", "beta", "gamma", "delta", "rows", "seconds")


def _numpy_state() -> dict[str, Any]:
    """numpy's global RNG state as plain values and a tensor (loadable with ``weights_only=True``)."""
    st = np.random.get_state(legacy=False)
    return {"bit_generator": st["bit_generator"], "key": torch.from_numpy(st["state"]["key"].astype(np.int64)),
            "pos": int(st["state"]["pos"]), "has_gauss": int(st["has_gauss"]), "gauss": float(st["gauss"])}


def _numpy_state_back(st: dict[str, Any]) -> dict[str, Any]:
    return {"bit_generator": st["bit_generator"], "state": {"key": st["key"].numpy().astype(np.uint32),
            "pos": st["pos"]}, "has_gauss": st["has_gauss"], "gauss": st["gauss"]}


def rng_states() -> dict[str, Any]:
    """Every RNG a worker touches (python, numpy, torch CPU and accelerator)."""
    out = {"python": random.getstate(), "numpy": _numpy_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what :func:`rng_states` captured (the accelerator's only when it has the same devices)."""
    random.setstate(states["python"])
    np.random.set_state(_numpy_state_back(states["numpy"]))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


def fingerprint_diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two fingerprints."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(fingerprint_diff(a, b, f"{prefix}{key}."))
        elif a != b:
            out.append(f"{prefix}{key}")
    return out


def check_fingerprint(meta: dict[str, Any], fingerprint: dict[str, Any], where: str) -> None:
    """Refuse a checkpoint of another format or configuration with one clear message."""
    if meta.get("format") != FORMAT:
        raise DataError(f"{where} is not a zsl-scale distributed checkpoint (format {meta.get('format')!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{where} is a checkpoint of format version {meta.get('format_version')}, this version "
                        f"reads {FORMAT_VERSION} (scaled features, plain-data state); use another run name")
    diff = fingerprint_diff(meta.get("fingerprint", {}), fingerprint)
    if diff:
        shown = ", ".join(diff[:4]) + (f" and {len(diff) - 4} more" if len(diff) > 4 else "")
        raise ConfigError(
            f"the checkpoint in {where} was made with another configuration ({shown} differ); "
            "use another run name, or move that run folder away to start over"
        )


def write_checkpoint_dir(directory: Path, state: dict[str, Any], fingerprint: dict[str, Any]) -> None:
    """Fill ``directory`` with ``state.pt``, ``meta.json`` and ``losses.csv`` of ``state``."""
    torch.save(state, directory / STATE_FILE)
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "epoch": state["epoch"], "fingerprint": fingerprint}
    (directory / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n")
    (directory / LOSS_FILE).write_text(loss_csv(state["history"]))


def read_checkpoint_dir(directory: Path, fingerprint: dict[str, Any], device: torch.device | str = "cpu") -> dict:
    """Load a checkpoint folder after checking its fingerprint."""
    meta = read_meta(directory)
    check_fingerprint(meta, fingerprint, str(directory))
    return load_torch_file(directory / STATE_FILE, "checkpoint", map_location=device)


def read_meta(directory: Path) -> dict[str, Any]:
    try:
        return json.loads((directory / META_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read checkpoint metadata in {directory}: {exc}") from exc


def checkpoint_dirs(run_dir: Path) -> list[tuple[int, Path]]:
    """(epoch, folder) of every complete checkpoint under a run folder, oldest first."""
    found = []
    if run_dir.is_dir():
        for meta in run_dir.glob(f"*/{META_FILE}"):
            if (meta.parent / STATE_FILE).is_file() and not meta.parent.name.startswith("."):
                try:
                    found.append((int(json.loads(meta.read_text())["epoch"]), meta.parent))
                except (OSError, ValueError, KeyError):
                    continue
    return sorted(found)


def preflight_run_dir(run_dir: Path, fingerprint: dict[str, Any]) -> int:
    """Before any worker starts: the run folder is writable and its checkpoints are of this config.

    Returns the epoch the run will resume from (0 for a new run).
    """
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=run_dir, prefix=".probe"):
            pass
    except OSError as exc:
        raise DataError(f"storage path {run_dir} is not writable: {exc.strerror or exc}") from exc
    for partial in run_dir.glob(".tmp_ckpt_*"):  # a checkpoint a killed run was writing: never complete
        shutil.rmtree(partial, ignore_errors=True)
    found = checkpoint_dirs(run_dir)
    for _, directory in found:
        check_fingerprint(read_meta(directory), fingerprint, str(directory))
    return found[-1][0] if found else 0


def loss_csv(history: list[dict[str, Any]]) -> str:
    """The per-epoch loss terms and warm-up weights as CSV text."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(LOSS_COLUMNS), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return buf.getvalue()


def write_loss_curve(history: list[dict[str, Any]], path: Path) -> Path:
    """Loss terms (log scale) and warm-up weights per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    for key in ("loss", "recon", "kl", "cross", "distance"):
        top.plot(epochs, [max(r[key], 1e-12) for r in history], label=key)
    top.set_yscale("log")
    top.set_ylabel("per sample")
    top.legend(fontsize=8)
    for key in ("beta", "gamma", "delta"):
        bottom.plot(epochs, [r[key] for r in history], label=key)
    bottom.set_xlabel("epoch")
    bottom.set_ylabel("warm-up weight")
    bottom.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path


def is_local(storage_path: str) -> bool:
    return "://" not in storage_path


class Context(Protocol):
    """What the training loop needs from its runner (Ray Train or a plain process group)."""

    rank: int
    world: int
    device: torch.device

    def latest_state(self, fingerprint: dict[str, Any]) -> dict[str, Any] | None: ...

    def save(self, state: dict[str, Any], fingerprint: dict[str, Any], metrics: dict[str, Any],
             last: bool = False) -> None: ...


class CheckpointClock:
    """When a run saves a checkpoint: after the first epoch it runs (a resumed run has a fresh checkpoint at once),
    then once ``every_s`` seconds have passed since the last one, and after its last epoch.

    Why not every epoch: an ImageNet-size VAE's checkpoint (weights and amsgrad Adam state) is ~200 MB, and a Ray
    Train report waits for the controller's next poll, so saving every short epoch costs more than the epoch. A
    resumed run recomputes the epochs since its checkpoint bit for bit (RNG states are in the checkpoint), so
    when saves happen never changes the numbers. Rank 0's clock decides for every rank (a Ray Train ``report``
    must be called by all ranks or by none; a local group meets at a barrier after each save).
    """

    def __init__(self, every_s: float, world: int, device: torch.device) -> None:
        self.every_s, self.world, self.device = every_s, world, device
        self._last: float | None = None

    def due(self, last: bool) -> bool:
        now = time.monotonic()
        due = last or self._last is None or now - self._last >= self.every_s
        if self.world > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            flag = torch.tensor([int(due)], dtype=torch.int64, device=self.device)
            torch.distributed.broadcast(flag, 0)
            due = bool(flag.item())
        if due:
            self._last = now
        return due


@dataclass
class LocalContext:
    """Runs in this process (or a torch.distributed group the caller set up); checkpoints in ``run_dir`` when its
    :class:`CheckpointClock` says so (``every_s = 0``: every epoch). The live ``losses.csv`` is written every
    epoch."""

    run_dir: Path
    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    keep: int = 2
    every_s: float = 0.0

    def __post_init__(self) -> None:
        self._clock = CheckpointClock(self.every_s, self.world, self.device)

    def latest_state(self, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
        found = checkpoint_dirs(self.run_dir)
        return read_checkpoint_dir(found[-1][1], fingerprint, self.device) if found else None

    def save(self, state: dict[str, Any], fingerprint: dict[str, Any], metrics: dict[str, Any],
             last: bool = False) -> None:
        """A local checkpoint is a few files written in this process (atomically: a temporary folder, renamed)."""
        due = self._clock.due(last)
        if self.rank == 0:
            if due:
                final = self.run_dir / f"checkpoint_epoch_{state['epoch']:04d}"
                tmp = Path(tempfile.mkdtemp(prefix=".tmp_ckpt_", dir=self.run_dir))
                write_checkpoint_dir(tmp, state, fingerprint)
                if final.exists():
                    shutil.rmtree(final)
                os.replace(tmp, final)
                for _, old in checkpoint_dirs(self.run_dir)[: -self.keep]:
                    shutil.rmtree(old, ignore_errors=True)
            atomic_write_text(self.run_dir / LOSS_FILE, loss_csv(state["history"]))
        if due and torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.barrier()


class RayContext:
    """Inside a Ray Train worker: checkpoints go through ``ray.train.report`` to the run's storage, when the
    :class:`CheckpointClock` says so. The live ``losses.csv`` is still written every epoch."""

    def __init__(self, run_dir: str, every_s: float = 0.0) -> None:
        import ray.train
        import ray.train.torch

        ctx = ray.train.get_context()
        self.rank, self.world = ctx.get_world_rank(), ctx.get_world_size()
        self.device = ray.train.torch.get_device()
        self.run_dir = run_dir
        self._clock = CheckpointClock(every_s, self.world, self.device)

    def latest_state(self, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
        import ray.train

        ckpt = ray.train.get_checkpoint()
        if ckpt is None:
            return None
        with ckpt.as_directory() as d:
            return read_checkpoint_dir(Path(d), fingerprint, self.device)

    def save(self, state: dict[str, Any], fingerprint: dict[str, Any], metrics: dict[str, Any],
             last: bool = False) -> None:
        import ray.train

        if self._clock.due(last):
            with tempfile.TemporaryDirectory(prefix="zsl_ckpt_") as tmp:
                checkpoint = None
                if self.rank == 0:
                    write_checkpoint_dir(Path(tmp), state, fingerprint)
                    checkpoint = ray.train.Checkpoint.from_directory(tmp)
                ray.train.report(metrics, checkpoint=checkpoint)  # returns once the checkpoint is in storage
        if self.rank == 0 and is_local(self.run_dir):  # live progress, written after any checkpoint of its epoch
            atomic_write_text(Path(self.run_dir) / LOSS_FILE, loss_csv(state["history"]))


def finish_run(run_dir: Path, history: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    """Final ``losses.csv``, ``loss_curve.png`` and ``summary.json`` in the run folder."""
    atomic_write_text(run_dir / LOSS_FILE, loss_csv(history))
    if history:
        write_loss_curve(history, run_dir / CURVE_FILE)
    atomic_write_json(run_dir / "summary.json", summary)
