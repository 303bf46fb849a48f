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
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

EVENTS_FILE = ".failures.jsonl"
SAME_INCIDENT_S = 120.0  # failures this close together are one incident (a lost node fails its workers)
log = logging.getLogger("ray.zsl_scale")  # a Ray logger: routed to ray.log by init_ray


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


def _alive_nodes() -> dict[str, str]:
    import ray

    return {n["NodeID"]: n.get("NodeManagerAddress", "?") for n in ray.nodes() if n.get("Alive")}


@contextlib.contextmanager
def watch_failures(run_dir: Path, name: str, max_failures: int, emit: Callable[[str], None] | None = None,
                   every_s: float = 1.0) -> Iterator[None]:
    """While the block runs, print one line per lost node or failed worker (a daemon thread)."""
    say = emit or (lambda line: print(line, file=sys.stderr, flush=True))
    events = run_dir / EVENTS_FILE
    events.unlink(missing_ok=True)
    stop, state = threading.Event(), {"attempt": 0, "read": 0, "last": -1e9}
    where = run_dir / "ray.log"
    limit = "unlimited" if max_failures < 0 else str(max_failures)

    def report(what: str, detail: str) -> None:
        done = _epochs_done(run_dir)
        log.error("%s (epoch %d): %s", what, done + 1, detail)
        if time.monotonic() - state["last"] < SAME_INCIDENT_S:  # a lost node fails its workers too: one line
            return
        state["attempt"] += 1
        state["last"] = time.monotonic()
        resume = f"resuming from checkpoint {done}" if done else "restarting from the start"
        say(f"{name}: {what} at epoch {done + 1}; {resume} (attempt {state['attempt']} of {limit}); "
            f"full log: {where}")

    def poll() -> None:
        try:
            known = _alive_nodes()
        except Exception:
            return
        while not stop.wait(every_s):
            try:
                now = _alive_nodes()
                for node, ip in known.items():
                    if node not in now:
                        report(f"node {ip} lost", f"node {node} at {ip} is no longer alive")
                known = now
                if events.is_file():
                    lines = events.read_text().splitlines()
                    for line in lines[state["read"]:]:
                        ev = json.loads(line)
                        what = "lost its node" if "node" in ev["first"].lower() else f"failed ({ev['error']})"
                        report(f"worker {ev['rank']} {what}", ev["text"])
                    state["read"] = len(lines)
            except Exception:
                continue

    thread = threading.Thread(target=poll, name="zsl-failure-watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
