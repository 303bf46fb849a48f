"""Where things live: package data, the shared data folder and the cache.

The shared data folder (``../shared/data`` beside a checkout) is only needed for real-data tests and
for rebuilding package data; a fresh install works from package data alone.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # zsl_scale/
PACKAGE_DATA = PACKAGE_ROOT / "data"


def shared_data_dir() -> Path:
    """The shared data folder: ``$ZSL_SCALE_SHARED_DATA`` or ``<checkout>/../shared/data``."""
    env = os.environ.get("ZSL_SCALE_SHARED_DATA")
    if env:
        return Path(env)
    return PACKAGE_ROOT.parents[1] / "shared" / "data"


def cache_dir() -> Path:
    """Cache root for derived data (WordNet graph, embeddings): ``$ZSL_SCALE_CACHE`` or XDG cache."""
    env = os.environ.get("ZSL_SCALE_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "zsl-scale"


PATH_VARIABLES = ("ZSL_SCALE_SHARED_DATA", "ZSL_SCALE_CACHE", "XDG_CACHE_HOME")


@contextlib.contextmanager
def working_directory(folder: Path) -> Iterator[None]:
    """Run the block from ``folder`` (an absolute folder the run owns), then go back to where it started.

    Why: a driver started by ``ray job submit`` runs inside Ray's unpacked ``working_dir``, which Ray 2.60 deletes
    while the job still runs once the workers that shared it have exited (seen after a job's features stage); any
    later ``os.getcwd()`` then raises a bare ``FileNotFoundError`` (``import torch._dynamo`` makes one, in the next
    stage's optimizer). Every path a user gave is resolved before this; the path variables zsl-scale reads are made
    absolute for the block, so a relative one keeps its meaning.
    """
    try:
        before: str | None = os.getcwd()
    except FileNotFoundError:
        before = None
    saved = {k: os.environ[k] for k in PATH_VARIABLES if k in os.environ}
    for key, value in saved.items():
        os.environ[key] = os.path.abspath(value)
    os.chdir(folder)
    try:
        yield
    finally:
        os.environ.update(saved)
        if before is not None:
            with contextlib.suppress(OSError):
                os.chdir(before)
