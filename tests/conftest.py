"""Shared fixtures: the real shared data (skip locally, fail in CI) and one Ray session per run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from zsl_scale.paths import shared_data_dir

IN_CI = os.environ.get("CI", "").lower() == "true"


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


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray runtime for the whole test run: starting Ray costs 4-8 s and ~1 GB each time."""
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if not ray.is_initialized():
        ray.init(
            num_cpus=2,
            object_store_memory=200 * 1024 * 1024,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    yield ray
    ray.shutdown()
