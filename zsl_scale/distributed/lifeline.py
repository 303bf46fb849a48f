"""Workers that die with their driver: no orphan keeps training (and writing) after ``dist train`` is killed.

A ``kill -9`` of the driver runs no cleanup, so its DDP workers would keep training: they write a
``summary.json`` without ``vae.pt`` and hold the gloo port, and a re-run meanwhile dies in gloo. Two
mechanisms, both armed by :func:`bind_to_driver` at the start of every worker:

* Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` — the kernel kills a direct child (``mp.spawn`` workers)
  the moment its parent dies;
* a daemon thread polling the driver's pid once a second — Ray Train workers are children of the
  raylet, not of the driver, so only a heartbeat sees the driver go. A zombie counts as dead.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1


def driver_info() -> dict[str, Any]:
    """Who the workers should die with: this process (pid + host; pids only mean something on one host)."""
    return {"pid": os.getpid(), "host": socket.gethostname()}


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie — killed but not yet reaped — does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (macOS): trust kill(0)


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _watch(pid: int, interval: float) -> None:
    while pid_alive(pid):
        time.sleep(interval)
    print(f"zsl-scale worker {os.getpid()}: driver {pid} is gone; exiting", file=sys.stderr, flush=True)
    _die()


def bind_to_driver(driver: dict[str, Any] | None, interval: float = 1.0) -> bool:
    """In a worker: die when the driver dies. Returns whether a watch was armed (same host only)."""
    if not driver or driver.get("host") != socket.gethostname():
        return False
    pid = int(driver["pid"])
    if pid == os.getpid():
        return False  # a one-process run: the driver is the worker
    if sys.platform.startswith("linux") and os.getppid() == pid:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if not pid_alive(pid):  # died before the signal was armed
        _die()
    threading.Thread(target=_watch, args=(pid, interval), daemon=True, name="zsl-driver-watch").start()
    return True
