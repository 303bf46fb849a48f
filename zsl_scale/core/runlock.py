"""One writer per output folder, and output folders that are checked before any work starts.

Two commands writing the same ``--out`` at once interleave their files; a run with other settings
after a finished one mixes two experiments in one folder. :func:`output_lock` takes an exclusive lock
file in the folder (``O_CREAT | O_EXCL``, holding pid, host, command and start time) for the whole
run: a second writer is refused with one line naming the holder; a lock left by a dead process on
this host is taken over. :func:`check_output_dir` turns "is a file" / "not writable" into one
:class:`DataError` line before anything is computed, instead of a traceback after the work.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import os
import socket
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from zsl_scale.core.errors import ConfigError, DataError

LOCK_NAME = ".zsl-scale.lock"
_HELD: dict[Path, int] = {}  # folders this process holds → nesting depth (a stage inside a locked job)


def check_output_dir(path: str | os.PathLike[str], what: str = "--out") -> Path:
    """Create ``path`` if needed and prove it is a writable folder; one-line :class:`DataError` otherwise."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise DataError(f"{what} {p} is a file, not a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=p, prefix=".probe"):
            pass
    except OSError as exc:
        raise DataError(f"{what} {p} is not writable: {exc.strerror or exc}") from None
    return p


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _holder(lock: Path) -> dict[str, Any]:
    try:
        return json.loads(lock.read_text())
    except (OSError, ValueError):
        return {}


def _describe(holder: dict[str, Any]) -> str:
    return (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, `{holder.get('command', '?')}`, "
            f"since {holder.get('started', '?')}")


def _try_create(lock: Path, info: dict[str, Any]) -> bool:
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(info, sort_keys=True) + "\n")
    return True


def _new_folders(path: Path) -> list[Path]:
    """The folders that creating ``path`` would make, deepest first (empty when it exists)."""
    made: list[Path] = []
    p = path.absolute()
    while not p.exists() and p != p.parent:
        made.append(p)
        p = p.parent
    return made


def _remove_empty(made: list[Path]) -> None:
    for folder in made:  # deepest first; a non-empty one (the run wrote something) stops it
        try:
            folder.rmdir()
        except OSError:
            break


@contextlib.contextmanager
def no_new_folders_on_error(path: str | os.PathLike[str]) -> Iterator[None]:
    """A block that fails removes the (still empty) folders it created for ``path`` and its parents."""
    made = _new_folders(Path(path))
    try:
        yield
    except BaseException:
        _remove_empty(made)
        raise


@contextlib.contextmanager
def output_lock(path: str | os.PathLike[str], what: str = "--out", command: str | None = None) -> Iterator[Path]:
    """Hold the exclusive lock of output folder ``path`` (checked and created first) for the block.

    Raises :class:`DataError` naming the holder when another live process holds it. Re-entrant within a
    process (a job's stage inside the job's locked folder). The lock file is removed on exit, also on error.
    """
    created = _new_folders(Path(path))
    folder = check_output_dir(path, what).resolve()
    if folder in _HELD:
        _HELD[folder] += 1
        try:
            yield folder
        finally:
            _HELD[folder] -= 1
        return
    lock = folder / LOCK_NAME
    info = {"pid": os.getpid(), "host": socket.gethostname(), "command": command or " ".join(sys.argv),
            "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    for _ in range(3):
        if _try_create(lock, info):
            break
        holder = _holder(lock)
        pid = holder.get("pid")
        stale = holder.get("host") == info["host"] and isinstance(pid, int) and not _alive(pid)
        if not stale and holder:
            raise DataError(f"{what} {folder} is in use by another run ({_describe(holder)}); wait for it to "
                            f"finish or choose another folder (a stale lock is {lock})")
        with contextlib.suppress(FileNotFoundError):  # dead holder (or an unreadable lock): take it over
            lock.unlink()
    else:
        raise DataError(f"cannot take the lock {lock}: {os.strerror(errno.EEXIST)}")
    _HELD[folder] = 1
    try:
        yield folder
    finally:
        del _HELD[folder]
        if _holder(lock).get("pid") == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()
        _remove_empty(created)  # a run that failed before writing anything leaves no empty folder behind,
        # nor the parent folders it created for it


def claim_config(folder: str | os.PathLike[str], name: str, text: str, what: str = "--out") -> None:
    """Refuse ``folder`` when it holds another run's ``name`` (e.g. ``config.yaml``) with other content.

    Called before a run writes anything there, so a run with other settings never mixes its results into
    (or overwrites the config of) a finished run. The same settings resume / re-run in place.
    """
    existing = Path(folder) / name
    if not existing.is_file():
        return
    old = existing.read_text(encoding="utf-8", errors="replace")
    if old == text:
        return
    diff = _yaml_diff(old, text)
    shown = ", ".join(diff[:4]) + (f" and {len(diff) - 4} more" if len(diff) > 4 else "") if diff else "content"
    raise ConfigError(f"{what} {folder} holds a run with other settings ({shown} differ in {name}); choose "
                      "another folder, or remove that one to start over")


def _yaml_diff(old: str, new: str) -> list[str]:
    import yaml

    try:
        a, b = yaml.safe_load(old), yaml.safe_load(new)
    except yaml.YAMLError:
        return []
    return _flat_diff(a, b, "") if isinstance(a, dict) and isinstance(b, dict) else []


def _flat_diff(a: dict[str, Any], b: dict[str, Any], prefix: str) -> list[str]:
    out: list[str] = []
    for key in sorted(set(a) | set(b), key=str):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out += _flat_diff(x, y, f"{prefix}{key}.")
        elif x != y:
            out.append(f"{prefix}{key}")
    return out
