"""Shared fixtures: the real shared data (skip locally, fail in CI), one real multi-node Ray cluster per run,
the ``zsl-scale`` subprocess helper."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from zsl_scale.core.errors import DataError
from zsl_scale.core.paths import shared_data_dir

IN_CI = os.environ.get("CI", "").lower() == "true"


def parse_python(path: Path) -> Any:
    """``ast.parse`` of a source file, retried on CPython 3.11's spurious ``SystemError: AST constructor recursion
    depth mismatch`` (its AST conversion keeps the depth in module-wide state, which another conversion running at
    the same time, e.g. in one of Ray's driver threads, can disturb; gh-106905, fixed in 3.11.8 and 3.12.1). Seen
    once in the full suite; the file's content is the same on every try."""
    import ast

    text = path.read_text(encoding="utf-8")
    for attempt in range(3):
        try:
            return ast.parse(text, filename=str(path))
        except SystemError as exc:
            if "recursion depth mismatch" not in str(exc) or attempt == 2:
                raise
    raise AssertionError("unreachable")


def require_path(path: Path, what: str) -> Path:
    """Return ``path`` if it exists; skip with a reason locally, fail in CI (CI always has the data)."""
    if path.exists():
        return path
    msg = f"{what} not found at {path} (set ZSL_SCALE_SHARED_DATA or check out ../shared)"
    if IN_CI:
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only shared data folder (``../shared/data``)."""
    return require_path(shared_data_dir(), "shared data folder")


@pytest.fixture(scope="session")
def flo_dir(shared_data: Path) -> Path:
    """Real Flowers-102 GZSL benchmark files."""
    return require_path(shared_data / "flo", "Flowers-102 benchmark")


@pytest.fixture(scope="session")
def imagenet_samples_dir(shared_data: Path) -> Path:
    """1,000 real ImageNet images, one per 1K class."""
    return require_path(shared_data / "imagenet-samples", "ImageNet sample images")


def free_port() -> int:
    """A TCP port nobody listens on now (never Ray's default 6379, which another cluster may hold)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class CliResult:
    """What a ``zsl-scale`` subprocess left: its exit code and both streams."""

    rc: int
    out: str
    err: str

    def error_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("error:")]


def zsl_command() -> list[str]:
    """The installed ``zsl-scale`` entry point (the venv's), else ``python -m zsl_scale``."""
    exe = Path(sys.executable).with_name("zsl-scale")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "zsl_scale"]


def run_zsl(args: list[str], cwd: Path, *, address: str | None, timeout: float = 600,
            env: dict[str, str] | None = None) -> CliResult:
    """Run ``zsl-scale ARGS`` as a user does: a subprocess in ``cwd``, joining the cluster through RAY_ADDRESS."""
    full = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    full.update({"RAY_AUTH_MODE": "disabled", "HF_HUB_OFFLINE": "1", **(env or {})})
    if address:
        full["RAY_ADDRESS"] = address
    cwd.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([*zsl_command(), *args], cwd=cwd, env=full, capture_output=True, text=True,
                          timeout=timeout)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def epochs_done(run_dir: Path) -> int:
    """Epochs a ``dist train`` run (any runner) has checkpointed: rows of its live ``losses.csv``."""
    losses = run_dir / "losses.csv"
    return max(0, len(losses.read_text().splitlines()) - 1) if losses.is_file() else 0


def wait_until(cond: Callable[[], bool], proc: subprocess.Popen, timeout: float, what: str) -> bool:
    """Poll ``cond`` until it holds (True) or ``proc`` exits (False); fail after ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            return False
        if time.monotonic() > end:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)
    return True


@dataclass
class RayCluster:
    """A real multi-node Ray cluster on this machine: a head and worker nodes, each its own raylet."""

    cluster: Any
    node_args: dict[str, Any]

    @property
    def address(self) -> str:
        return self.cluster.address

    def run(self, args: list[str], cwd: Path, **kwargs: Any) -> CliResult:
        """``zsl-scale ARGS`` as a subprocess in ``cwd`` with RAY_ADDRESS pointing at this cluster."""
        return run_zsl(args, cwd, address=self.address, **kwargs)

    def start(self, args: list[str], cwd: Path) -> subprocess.Popen:
        """``zsl-scale ARGS`` started in the background (stdout/stderr piped), joining this cluster."""
        env = {**os.environ, "RAY_ADDRESS": self.address, "RAY_AUTH_MODE": "disabled", "HF_HUB_OFFLINE": "1"}
        cwd.mkdir(parents=True, exist_ok=True)
        return subprocess.Popen([*zsl_command(), *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def run_losing_node(self, args: list[str], cwd: Path, *, ready: Callable[[], bool], marker: str, what: str,
                        on_kill: Callable[[], None] | None = None) -> CliResult:
        """Run ``zsl-scale ARGS``; once ``ready()`` holds (``what``), kill a worker node hosting a ``marker`` process
        (e.g. RayTrainWorker), call ``on_kill`` and let the run finish; then a fresh node takes the killed one's place,
        so later tests see the full cluster again."""
        proc = self.start(args, cwd)
        node = None
        try:
            assert wait_until(ready, proc, 300, what), proc.stderr.read()[-3000:]
            victim = self.raylet_hosting(marker)
            assert victim is not None, f"no worker node hosts a {marker}"
            pid, node = victim
            self.kill_node(pid)
            if on_kill is not None:
                on_kill()
            out, err = proc.communicate(timeout=400)
        finally:
            if proc.poll() is None:
                proc.kill()
            if node is not None:
                self.replace(node)
        return CliResult(proc.returncode, out, err)

    def worker_raylets(self) -> dict[int, Any]:
        """Worker node raylet PID → its node (the head is never killed: it holds the GCS)."""
        from ray._private import ray_constants

        return {n.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid: n
                for n in self.cluster.worker_nodes}

    def raylet_hosting(self, marker: str) -> tuple[int, Any] | None:
        """A worker node whose raylet has a worker process with ``marker`` in its name (e.g. RayTrainWorker)."""
        import psutil

        for pid, node in self.worker_raylets().items():
            try:
                kids = psutil.Process(pid).children(recursive=True)
                if any(marker in " ".join(k.cmdline()) for k in kids):
                    return pid, node
            except psutil.Error:
                continue
        return None

    def worker_processes(self) -> list[Any]:
        """Every process the nodes' raylets started (Ray workers and actors), head included."""
        import psutil
        from ray._private import ray_constants

        found = []
        for node in [self.cluster.head_node, *self.cluster.worker_nodes]:
            with contextlib.suppress(Exception):
                raylet = node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid
                found += psutil.Process(raylet).children(recursive=True)
        return found

    def kill_node(self, raylet_pid: int) -> None:
        """``kill -9`` a worker node: its raylet and every process it started (as when the machine dies)."""
        import psutil

        procs = [psutil.Process(raylet_pid), *psutil.Process(raylet_pid).children(recursive=True)]
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.kill()

    def replace(self, node: Any) -> None:
        """Remove a (killed) worker node and start a fresh one, so later tests see the full cluster again."""
        self.cluster.remove_node(node, allow_graceful=False)
        self.cluster.add_node(**self.node_args)
        self.cluster.wait_for_nodes()


def _kill_processes_under(temp: Path) -> None:
    """Kill the Ray processes of a cluster whose start failed half-way (their command lines name ``temp``)."""
    import psutil

    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if proc.pid != os.getpid() and str(temp) in " ".join(proc.info["cmdline"] or []):
                proc.kill()


# The head's GCS checks every node each second and marks one dead after 3 failed checks (Ray's defaults: every
# 3 s, 5 failures): a killed node is noticed in ~3 s instead of ~15 s. An operator's setting, as on any cluster;
# the node-loss tests then spend their time on the restart, not on waiting. A check only fails on an error or
# after Ray's 10 s timeout, so a busy but live raylet is not taken for dead.
HEAD_SYSTEM_CONFIG = {"health_check_period_ms": 1000, "health_check_failure_threshold": 3}


def _start_cluster(attempts: int = 3) -> tuple[Any, dict[str, Any], Path]:
    """Head + two worker nodes; retried, because Ray gives a node a fixed 30 s to register with the GCS, which
    a heavily loaded machine can miss (then the half-started processes are killed and the start repeated)."""
    from ray.cluster_utils import Cluster

    for attempt in range(1, attempts + 1):
        # a short path: Ray's unix sockets live under it (≤ 107 characters)
        temp = Path(tempfile.mkdtemp(prefix="zr", dir=tempfile.gettempdir()))
        common = {"num_cpus": 1, "object_store_memory": 100 * 1024 * 1024, "temp_dir": str(temp)}
        node_args = {**common, "min_worker_port": 0, "max_worker_port": 0}
        cluster = Cluster(shutdown_at_exit=True)
        try:
            cluster.add_node(**common, gcs_server_port=free_port(), include_dashboard=False,
                             _system_config=HEAD_SYSTEM_CONFIG)
            for _ in range(2):
                cluster.add_node(**node_args)
            cluster.wait_for_nodes()
            return cluster, node_args, temp
        except Exception:
            with contextlib.suppress(Exception):
                cluster.shutdown()
            _kill_processes_under(temp)
            shutil.rmtree(temp, ignore_errors=True)
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """ONE real Ray cluster for the whole test run: a head and two worker nodes of 1 CPU each (free ports,
    Ray's temp folder under TMPDIR, every node's logs in its files). Subprocess tests join it through
    RAY_ADDRESS, as ``ray job submit`` and ``jobs/slurm.sbatch`` make the CLI do; in-process tests join it
    with :func:`ray_session`. Starting it costs ~10-20 s once."""
    pytest.importorskip("ray")
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    record = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"  # Cluster writes its address there
    record.parent.mkdir(exist_ok=True)
    cluster, node_args, temp = _start_cluster()
    handle = RayCluster(cluster, node_args)
    try:
        yield handle
    finally:
        if ray.is_initialized():
            ray.shutdown()
        workers = handle.worker_processes()  # Ray workers renamed themselves (ray::…): found by parent, not name
        cluster.shutdown()
        for proc in workers:  # a worker of a killed driver outlived its raylet once (a TrainController, minutes)
            with contextlib.suppress(Exception):
                proc.kill()
        _kill_processes_under(temp)  # a replaced node's leftovers, if any
        record.unlink(missing_ok=True)  # not left to point the next `ray.init()` at a dead cluster
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_session(ray_cluster: RayCluster):
    """This process connected to the session's cluster (tests that call Ray in-process)."""
    import ray

    if not ray.is_initialized():
        ray.init(address=ray_cluster.address, log_to_driver=False, configure_logging=False)
    return ray


def run_cli(args: list[str]) -> int:
    """Run ``zsl-scale ARGS`` in-process; return its exit code (2 for user errors)."""
    from zsl_scale.cli import main

    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.fixture(scope="session")
def graph_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache dir holding the WordNet graph, extracted once per test run (10-90 s); skip/fail without WordNet."""
    from zsl_scale.imagenet import hierarchy as hierarchy
    root = tmp_path_factory.getbasetemp() / "zsl-graph-cache"
    old = os.environ.get("ZSL_SCALE_CACHE")
    os.environ["ZSL_SCALE_CACHE"] = str(root)
    try:
        hierarchy.load_hierarchy()
    except DataError as exc:
        if IN_CI:
            pytest.fail(f"WordNet missing in CI: {exc}")
        pytest.skip(f"WordNet 3.0 not installed: {exc}")
    finally:
        if old is None:
            os.environ.pop("ZSL_SCALE_CACHE", None)
        else:
            os.environ["ZSL_SCALE_CACHE"] = old
    return root
