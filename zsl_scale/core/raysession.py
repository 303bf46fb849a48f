"""Connecting to Ray: one place that decides how a local runtime starts (stages only call this)."""

from __future__ import annotations

import os
from typing import Any


def init_ray(address: str | None = None, cpus: int | None = None, object_store_memory: int | None = None) -> None:
    """Connect to ``address`` (an existing cluster) or start a local Ray; a no-op if already connected.

    A local runtime has no dashboard and keeps its logs out of the driver's terminal. Ray starts
    workers at nice 15 by default; in a local job the workers *are* the job, so they compete for the
    CPU like the process that launched them.
    """
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    kwargs: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    if address:
        ray.init(address=address, **kwargs)
        return
    os.environ.setdefault("RAY_worker_niceness", "0")
    ray.init(num_cpus=cpus, object_store_memory=object_store_memory, include_dashboard=False, **kwargs)
