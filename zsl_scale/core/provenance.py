"""Environment capture for results files (who, when, where, with what).

Results must be reproducible and auditable: every results JSON carries package versions, the git
commit of the code, the date, the device and torch's own environment report.
"""

from __future__ import annotations

import datetime as _dt
import functools
import platform
import subprocess
from importlib import metadata
from typing import Any

import torch

_PACKAGES = ("zsl-scale", "torch", "numpy", "scipy", "pyarrow", "ray", "nltk", "faiss-cpu", "faiss-gpu")


def package_versions(names: tuple[str, ...] = _PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that can change a result (absent ones are skipped)."""
    out: dict[str, str] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """Commit of the source tree (``+dirty`` when it has uncommitted changes), or None outside git."""
    from zsl_scale.core.paths import PACKAGE_ROOT

    root = PACKAGE_ROOT
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root, capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("+dirty" if dirty else "")


@functools.lru_cache(maxsize=1)
def torch_env() -> dict[str, Any]:
    """torch's own environment summary (``torch.utils.collect_env``), as a dict."""
    try:
        from torch.utils import collect_env

        info = collect_env.get_env_info()
        return {k: v for k, v in info._asdict().items() if isinstance(v, (str, int, float, bool, type(None)))}
    except Exception as exc:  # collect_env shells out; never let it break a run
        return {"error": repr(exc)}


def device_name(device: torch.device | str) -> str:
    """Human-readable device name, e.g. ``cuda:0 (NVIDIA H100)`` or ``cpu (x86_64, 2 threads)``."""
    dev = torch.device(device)
    if dev.type == "cuda":
        idx = dev.index if dev.index is not None else torch.cuda.current_device()
        return f"cuda:{idx} ({torch.cuda.get_device_name(idx)})"
    return f"{dev.type} ({platform.machine()}, {torch.get_num_threads()} threads)"


def capture(device: torch.device | str = "cpu", full: bool = True) -> dict[str, Any]:
    """Everything a results file needs to say where it came from."""
    out: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "packages": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device_name(device),
    }
    if full:
        out["torch_env"] = torch_env()
    return out
