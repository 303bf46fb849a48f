"""The one dispatch of VAE training over its three runners, for ``zsl-scale dist train`` and a job's train stage.

One vocabulary for the CLI's ``--runner`` and a job's ``runner:``:

* ``local`` — this process, one worker, no Ray. ``scale.workers`` must be 1: the CLI's ``local`` used to
  spawn processes when workers > 1 while the YAML's trained in one process whatever ``workers`` said, so a
  ``local`` run with more workers is now refused rather than guessed at;
* ``spawn`` — ``scale.workers`` local processes over gloo (``mp.spawn``), no Ray;
* ``ray`` — Ray Train's ``TorchTrainer`` on ``scale.address`` or a local Ray runtime.
"""

from __future__ import annotations

import difflib
from typing import Any

from zsl_scale.core import ConfigError, resolve_device
from zsl_scale.distributed.trainer import VaeJob, fit_local, fit_spawn

RUNNERS = ("local", "spawn", "ray")


def check_runner(runner: str, workers: int = 1, what: str = "runner") -> str:
    """``runner`` if it is one of :data:`RUNNERS` and fits ``workers`` (a one-line :class:`ConfigError` otherwise).

    Args:
        runner: the runner's name.
        workers: ``scale.workers`` of the job (1 when not known yet: only the name is checked).
        what: how the message names the setting (``--runner``, ``stage 'train': runner``).
    """
    if runner not in RUNNERS:
        close = difflib.get_close_matches(runner, RUNNERS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{what} must be local, spawn or ray, got {runner!r}{hint}")
    if runner == "local" and workers > 1:
        raise ConfigError(f"{what} local trains in this one process but scale.workers is {workers}; use spawn "
                          f"({workers} local processes) or ray, or set workers to 1")
    return runner


def fit_vae(job: VaeJob, runner: str) -> dict[str, Any]:
    """Train ``job`` under ``runner`` (checked by :func:`check_runner`); returns the run's summary."""
    workers = job.cfg.scale.workers
    check_runner(runner, workers)
    if runner == "ray":
        from zsl_scale.distributed.ray_fit import fit_ray

        return fit_ray(job)
    if runner == "spawn":
        return fit_spawn(job, workers)
    return fit_local(job, device=str(resolve_device(job.cfg.scale.device)))
