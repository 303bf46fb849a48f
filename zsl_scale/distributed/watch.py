"""One terminal line per worker or node failure during a Ray Train run, the details in the run's ``ray.log``.

Ray's own messages stay off the terminal (``log_to_driver=False``, Ray's loggers → ``ray.log``), so without
this a recovered failure would be invisible and an unrecovered one a wall of Ray text. Two sources:

* the driver polls the cluster's node table: a node that was alive and is not → ``node <ip> lost``;
* Ray Train's controller (another process, maybe another node) calls :class:`FailureEvents` when workers
  raise; it appends one JSON line per failure to ``<run>/.failures.jsonl``, which the driver tails.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from zsl_scale.distributed.state import checkpoint_dirs

EVENTS_FILE = ".failures.jsonl"
SAME_INCIDENT_S = 120.0  # failures this close together are one incident (a lost node fails its workers)


def _user_callback_base() -> type:
    import ray.train

    return ray.train.UserCallback


def failure_callback(run_dir: str) -> Any:
    """A ``ray.train.UserCallback`` writing one line per worker exception to ``<run_dir>/.failures.jsonl``."""
    base = _user_callback_base()

    class FailureEvents(base):  # type: ignore[misc, valid-type]
        def __init__(self, path: str) -> None:
            self.path = path

        def after_exception(self, run_context: Any, worker_exceptions: dict[int, Exception]) -> None:
            with open(self.path, "a") as fh:
                for rank, exc in sorted(worker_exceptions.items()):
                    text = str(exc).strip()
                    fh.write(json.dumps({"rank": rank, "error": type(exc).__name__,
                                         "first": text.splitlines()[0] if text else "", "text": text}) + "\n")

    return FailureEvents(str(Path(run_dir) / EVENTS_FILE))


def _epochs_done(run_dir: Path) -> int:
    try:
        return max(0, len((run_dir / "losses.csv").read_text().strip().splitlines()) - 1)
    except OSError:
        return 0


def _checkpoint_epoch(run_dir: Path) -> int:
    """The epoch of the newest complete checkpoint in the run folder (0: none, or storage is a URI)."""
    found = checkpoint_dirs(run_dir)
    return found[-1][0] if found else 0


def _alive_nodes() -> dict[str, str]:
    import ray

    return {n["NodeID"]: n.get("NodeManagerAddress", "?") for n in ray.nodes() if n.get("Alive")}


class _Watch:
    """The driver's view of one ``fit()``: failures in, one terminal line per incident out.

    A lost node first shows up as its workers failing (a health check, an RPC error), and only seconds
    later as a dead node in the node table; a worker failure therefore waits up to ``grace_s`` for its node
    to be reported lost, so the line says what happened (node lost) rather than its symptom.
    """

    def __init__(self, run_dir: Path, name: str, max_failures: int, say: Callable[[str], None],
                 grace_s: float) -> None:
        self.run_dir, self.name, self.say, self.grace_s = run_dir, name, say, grace_s
        self.limit = "unlimited" if max_failures < 0 else str(max_failures)
        self.attempt, self.read, self.last = 0, 0, -1e9
        self.pending: tuple[float, int, str] | None = None  # (since, epochs done then, what)

    def detail(self, text: str) -> None:
        """The full story, for ``ray.log`` (appended beside Ray's own lines)."""
        with open(self.run_dir / "ray.log", "a") as fh:
            fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} ERROR zsl_scale: {text}\n")

    def incident(self, what: str, done: int) -> None:
        if time.monotonic() - self.last < SAME_INCIDENT_S:  # a lost node fails its workers too: one line
            return
        self.attempt, self.last = self.attempt + 1, time.monotonic()
        saved = _checkpoint_epoch(self.run_dir)  # checkpoints are reported every few seconds, not every epoch
        resume = f"resuming from checkpoint {saved}" if saved else "restarting from the start"
        self.say(f"{self.name}: {what} at epoch {done + 1}; {resume} (attempt {self.attempt} of {self.limit}); "
                 f"full log: {self.run_dir / 'ray.log'}")

    def node_lost(self, node: str, ip: str) -> None:
        self.detail(f"node {node} at {ip} is no longer alive")
        done = self.pending[1] if self.pending else _epochs_done(self.run_dir)
        self.pending = None
        self.incident(f"node {ip} lost", done)

    def worker_failed(self, ev: dict[str, Any]) -> None:
        self.detail(f"worker {ev['rank']} raised {ev['error']}: {ev['text']}")
        if self.pending is None:
            self.pending = (time.monotonic(), _epochs_done(self.run_dir), f"worker {ev['rank']} failed ({ev['error']})")

    def tick(self, force: bool = False) -> None:
        if self.pending and (force or time.monotonic() - self.pending[0] >= self.grace_s):
            _, done, what = self.pending
            self.pending = None
            self.incident(what, done)

    def poll_events(self) -> None:
        events = self.run_dir / EVENTS_FILE
        if events.is_file():
            lines = events.read_text().splitlines()
            for line in lines[self.read:]:
                self.worker_failed(json.loads(line))
            self.read = len(lines)


@contextlib.contextmanager
def watch_failures(run_dir: Path, name: str, max_failures: int, emit: Callable[[str], None] | None = None,
                   every_s: float = 1.0, grace_s: float = 45.0) -> Iterator[None]:
    """While the block runs, print one line per lost node or failed worker (a daemon thread polls)."""
    say = emit or (lambda line: print(line, file=sys.stderr, flush=True))
    (run_dir / EVENTS_FILE).unlink(missing_ok=True)
    watch, stop = _Watch(run_dir, name, max_failures, say, grace_s), threading.Event()

    def poll() -> None:
        try:
            known = _alive_nodes()
        except Exception:  # the watch must never break the run
            return
        while not stop.wait(every_s):
            try:
                watch.poll_events()
                now = _alive_nodes()
                for node, ip in known.items():
                    if node not in now:
                        watch.node_lost(node, ip)
                known = now
                watch.tick()
            except Exception:  # e.g. the GCS briefly unreachable: try again next tick
                continue

    thread = threading.Thread(target=poll, name="zsl-failure-watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
        watch.poll_events()
        watch.tick(force=True)
