"""Where things live: package data, the shared data folder and the cache.

The shared data folder (``../shared/data`` beside a checkout) is only needed for real-data tests and
for rebuilding package data; a fresh install works from package data alone.
"""

from __future__ import annotations

import os
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
