"""Ray Train runner: ``TorchTrainer`` with ``ScalingConfig``, ``RunConfig(name, storage_path)``,
``FailureConfig`` and checkpoints; re-running the same name resumes from its last checkpoint."""


from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from zsl_scale.core import DataError, check_resources, check_visible, cluster_address, init_ray, load_torch_file
from zsl_scale.distributed.lifeline import driver_info
from zsl_scale.distributed.state import RayContext, finish_run, preflight_run_dir
from zsl_scale.distributed.trainer import VaeJob, _announce, _summary, vae_worker
from zsl_scale.distributed.watch import failure_callback, watch_failures


def _ray_entry(config: dict[str, Any]) -> None:
    from zsl_scale.distributed.lifeline import bind_to_driver

    bind_to_driver(config.get("driver"))  # Ray workers are the raylet's children: a heartbeat on the driver
    job: VaeJob = config["job"]
    vae_worker(job, RayContext(config["run_dir"], job.cfg.scale.checkpoint_every_s))


POLL_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"


@contextlib.contextmanager
def controller_poll(seconds: float) -> Iterator[None]:
    """Ray Train's controller polls its workers every ``seconds`` (``scale.poll_interval_s``) in this block.

    Ray reads the period from ``RAY_TRAIN_HEALTH_CHECK_INTERVAL_S`` in the driver's environment and hands it to
    the controller it starts in ``fit()``; the variable is set only for the block, so the process's later runs
    and the user's own environment are untouched.
    """
    before = os.environ.get(POLL_ENV)
    os.environ[POLL_ENV] = str(float(seconds))
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(POLL_ENV, None)
        else:
            os.environ[POLL_ENV] = before


def _use_gpu(device: str) -> bool:
    import ray

    if device == "auto":
        return ray.cluster_resources().get("GPU", 0) >= 1
    return device == "cuda"


def fit_ray(job: VaeJob) -> dict[str, Any]:
    """Train on Ray Train's ``TorchTrainer``; re-running the same ``name`` resumes from its last checkpoint."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    s = job.cfg.scale
    storage = str(Path(s.storage_path).resolve()) if "://" not in s.storage_path else s.storage_path
    run_dir = f"{storage}/{job.cfg.name}"
    if "://" not in storage:
        _announce(Path(run_dir), preflight_run_dir(Path(run_dir), job.fingerprint()), job)
    local_runtime = cluster_address(s.address) is None
    init_ray(s.address, object_store_memory=256 * 1024 * 1024 if local_runtime else None,
             log_file=Path(run_dir) / "ray.log" if "://" not in storage else None)
    gpu = _use_gpu(s.device)
    check_resources(s.workers, s.cpus_per_worker, 1.0 if gpu else 0.0,
                    "--workers or scale.cpus_per_worker", wait_timeout=s.wait_timeout,
                    log=lambda line: print(f"{job.cfg.name}: {line}", file=sys.stderr))
    if not local_runtime and "://" not in storage:  # every node reads the shards and writes checkpoints
        check_visible({"storage": storage, "features": str(job.source.directory)})
    trainer = TorchTrainer(
        _ray_entry,
        train_loop_config={"job": job, "run_dir": run_dir, "driver": driver_info()},
        torch_config=TorchConfig(backend="nccl" if gpu else "gloo"),
        scaling_config=ScalingConfig(
            num_workers=s.workers, use_gpu=gpu, resources_per_worker={"CPU": s.cpus_per_worker}
        ),
        run_config=RunConfig(
            name=job.cfg.name,
            storage_path=storage,
            failure_config=FailureConfig(max_failures=s.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=s.keep_checkpoints),
            **({"callbacks": [failure_callback(run_dir)]} if "://" not in storage else {}),
        ),
    )
    try:
        with watch_failures(Path(run_dir), job.cfg.name, s.max_failures) if "://" not in storage \
                else contextlib.nullcontext(), controller_poll(s.poll_interval_s):
            result = trainer.fit()
    except Exception as exc:  # Ray wraps worker errors; surface a user error as one line
        raise _user_error(exc) from exc
    if result.checkpoint is None:  # nothing left to train and nothing reported: the run was already complete
        raise DataError(f"run {run_dir} reported no checkpoint; is it already complete? (raise --epochs to extend)")
    with result.checkpoint.as_directory() as d:
        history = load_torch_file(Path(d) / "state.pt", "checkpoint")["history"]
    summary = _summary(job, history, result.checkpoint.path)
    if "://" not in storage:
        finish_run(Path(run_dir), history, summary)
    return summary


def _user_error(exc: BaseException) -> BaseException:
    """The ZslError inside a Ray failure, with the worker's own message, if any (else the failure itself)."""
    from zsl_scale.core import worker_user_error

    return worker_user_error(exc) or exc
