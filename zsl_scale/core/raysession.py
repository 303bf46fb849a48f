"""Connecting to Ray: the one rule every stage and command follows (stages only call :func:`init_ray`).

* ``address`` (``scale.address`` / ``--address``) set → join that cluster;
* unset, ``RAY_ADDRESS`` set (``ray job submit``, ``jobs/slurm.sbatch``) → join that cluster;
* neither → start a fresh local runtime (``address="local"``): never attach to Ray's record of some earlier
  cluster (``ray_current_cluster``), which outlives a cluster that died without ``ray stop``.

Local-runtime options (CPUs, object store size) apply only to a runtime this process starts: a cluster
has its own. Joining has a time limit (``ZSL_SCALE_CONNECT_TIMEOUT``, default 60 s) and fails with one line
naming the address tried. Ray's own log lines — its Python loggers and what its C++ layer writes to the
driver's stderr — go to a file (the run's ``ray.log``), not the terminal.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zsl_scale.core.errors import ConfigError, DataError

CONNECT_TIMEOUT_S = 60.0
RAY_LOGGERS = ("ray", "ray.train", "ray.tune", "ray.data")


def cluster_address(address: str | None = None) -> str | None:
    """The cluster to join (the option, else ``RAY_ADDRESS``), or None for a fresh local runtime."""
    value = (address or os.environ.get("RAY_ADDRESS") or "").strip()
    return None if value in ("", "local") else value


def _connect_timeout() -> float:
    raw = os.environ.get("ZSL_SCALE_CONNECT_TIMEOUT", "")
    try:
        return float(raw) if raw else CONNECT_TIMEOUT_S
    except ValueError:
        raise ConfigError(f"ZSL_SCALE_CONNECT_TIMEOUT must be seconds, got {raw!r}") from None


def _host_port(address: str) -> tuple[str, int] | None:
    """``host:port`` of a GCS (or ``ray://``) address; None when it has none (``auto``)."""
    rest = address.split("://", 1)[-1]
    host, _, port = rest.rpartition(":")
    return (host.strip("[]"), int(port)) if host and port.isdigit() else None


def _wait_reachable(address: str, timeout: float) -> None:
    """Poll the head's port until it accepts a connection (a head may still be starting) or time runs out."""
    target = _host_port(address)
    if target is None:
        return
    deadline, last = time.monotonic() + timeout, ""
    while True:
        try:
            with socket.create_connection(target, timeout=min(5.0, max(timeout, 0.1))):
                return
        except OSError as exc:
            last = exc.strerror or str(exc)
        if time.monotonic() >= deadline:
            raise DataError(f"cannot reach the Ray cluster at {address} within {timeout:g} s ({last}); "
                            f"is the head node up? (address from {_source(address)})")
        time.sleep(1.0)


def _source(address: str) -> str:
    return "RAY_ADDRESS" if os.environ.get("RAY_ADDRESS", "").strip() == address else "--address / scale.address"


def route_ray_logs(log_file: str | Path | None) -> None:
    """Send the driver-side Ray loggers to ``log_file`` (appended) instead of the terminal."""
    handler: logging.Handler
    if log_file is None:
        handler = logging.NullHandler()
    else:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file, delay=True)  # no file until Ray says something
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(logging.INFO)  # Ray Data logs every scheduling step at DEBUG
    for name in RAY_LOGGERS:
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.propagate = False


_DIVERTED: list[str] = []


def divert_native_stderr(log_file: str | Path) -> None:
    """Send what native code writes to file descriptor 2 (Ray's C++ core worker in this process, and the Ray
    processes a local runtime starts) to ``log_file``; Python's ``sys.stderr`` keeps the terminal.

    Ray's C++ layer logs its warnings and errors (e.g. ``core_worker.cc: Actor … has constructor arguments
    in the object store``) straight to the driver's stderr, past Python's logging; the project's own lines
    and error messages are written through ``sys.stderr``, which this re-points at a duplicate of the
    original descriptor. Done once per process (later calls keep the first file), and only while
    ``sys.stderr`` is the process's own: a host that captures stderr itself (pytest) keeps it.
    """
    if _DIVERTED or sys.stderr is not sys.__stderr__:
        return
    path = Path(log_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    terminal = os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stderr = io.TextIOWrapper(io.FileIO(terminal, "w"), encoding=sys.stderr.encoding or "utf-8",
                                  errors="backslashreplace", line_buffering=True)
    _DIVERTED.append(str(path))


def init_ray(address: str | None = None, cpus: int | None = None, object_store_memory: int | None = None,
             log_file: str | Path | None = None) -> None:
    """Join the cluster :func:`cluster_address` names, or start a local runtime; a no-op if connected.

    A local runtime has no dashboard. Ray starts workers at nice 15 by default; in a local job the
    workers *are* the job, so they compete for the CPU like the process that launched them.
    """
    import ray

    if ray.is_initialized():
        # an earlier call connected without a log file (e.g. asking the cluster where models will run): the
        # stage's own Ray lines, Python's and the C++ core worker's, still go to its log, not the terminal
        if log_file is not None:
            route_ray_logs(log_file)
            divert_native_stderr(log_file)
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    route_ray_logs(log_file)
    if log_file is not None:
        divert_native_stderr(log_file)
    kwargs: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    target = cluster_address(address)
    if target is None:
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(address="local", num_cpus=cpus, object_store_memory=object_store_memory,
                 include_dashboard=False, **kwargs)
        return
    if target.startswith(("http://", "https://")):
        raise ConfigError(
            f"{_source(target)} is {target}, a dashboard (job submission) address: the CLI joins a cluster "
            "at the head's GCS address (host:6379), or run it with `ray job submit` (jobs/ray_submit.sh), "
            "which sets that address for the job")
    _wait_reachable(target, _connect_timeout())
    try:
        ray.init(address=target, **kwargs)
    except (ConnectionError, TimeoutError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"cannot join the Ray cluster at {target}: {first}") from exc


def _node_capacity(key: str) -> list[float]:
    import ray

    return [float(n["Resources"].get(key, 0)) for n in ray.nodes() if n.get("Alive")]


def check_resources(workers: int, cpus_per_worker: float, gpus_per_worker: float, options: str,
                    wait_timeout: float | None = None, log: Callable[[str], None] = print,
                    every_s: float = 60.0, timeout_option: str = "scale.wait_timeout") -> None:
    """Compare what a job asks (``workers`` × CPUs/GPUs each) with the cluster before Ray waits for it.

    A request the cluster can never satisfy (more in all than it has, or more per worker than its largest
    node) is one :class:`ConfigError` naming both numbers and ``options`` to change; a request the cluster
    can satisfy but not now prints ``waiting for N CPUs (cluster has M free)`` once every ``every_s`` and
    gives up after ``wait_timeout`` seconds (None: waits as long as it takes; ``timeout_option`` names the
    option that sets it).
    """
    import ray

    asks = {"CPU": (cpus_per_worker, workers * cpus_per_worker), "GPU": (gpus_per_worker, workers * gpus_per_worker)}
    total = ray.cluster_resources()
    for key, (each, need) in asks.items():
        if need <= 0:
            continue
        has, largest = float(total.get(key, 0)), max(_node_capacity(key), default=0.0)
        if need > has + 1e-9:
            raise ConfigError(f"the job asks {workers} workers × {each:g} {key}s = {need:g} {key}s but the Ray "
                              f"cluster has {has:g} {key}s in all; lower {options}")
        if each > largest + 1e-9:
            raise ConfigError(f"each worker asks {each:g} {key}s but the largest Ray node has {largest:g}; "
                              f"lower {options}")
    start, last_line = time.monotonic(), -float("inf")
    while True:
        free = ray.available_resources()
        short = [(key, need, float(free.get(key, 0))) for key, (_, need) in asks.items()
                 if need > 0 and float(free.get(key, 0)) + 1e-9 < need]
        if not short:
            return
        waited = time.monotonic() - start
        if wait_timeout is not None and waited >= wait_timeout:
            key, need, has = short[0]
            raise DataError(f"waited {waited:.0f} s for {need:g} {key}s (cluster has {has:g} free); "
                            f"the cluster is busy: retry later or raise {timeout_option}")
        if time.monotonic() - last_line >= every_s:
            key, need, has = short[0]
            log(f"waiting for {need:g} {key}s (cluster has {has:g} free)")
            last_line = time.monotonic()
        left = float("inf") if wait_timeout is None else wait_timeout - waited
        time.sleep(max(0.05, min(2.0, every_s, left)))


def _visible(paths: dict[str, str]) -> dict[str, bool]:
    return {name: os.path.isdir(path) for name, path in paths.items()}


def check_visible(paths: dict[str, str], timeout: float = 120.0) -> None:
    """Check that every alive node of the cluster sees the folders ``paths`` names (a shared filesystem).

    One zero-CPU task pinned to each node; a folder missing on a node is one :class:`DataError` naming the
    node, since a worker there would fail later with a traceback. A node that does not answer within
    ``timeout`` is skipped (it may be busy), not reported.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(num_cpus=0, max_retries=0)(_visible)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    refs = {probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(paths):
            n["NodeManagerAddress"] for n in nodes}
    ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=timeout)
    for ref in ready:
        try:
            seen = ray.get(ref)
        except ray.exceptions.RayError:
            continue  # the node went away meanwhile: not a visibility problem
        missing = [name for name, ok in seen.items() if not ok]
        if missing:
            name = missing[0]
            raise DataError(f"{name} folder {paths[name]} is not visible from Ray node {refs[ref]}: data and "
                            "storage must be on a filesystem every node sees (docs/distributed.md)")
