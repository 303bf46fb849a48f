"""Shared fixtures: the real shared data (skip locally, fail in CI) and one Ray session per run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from zsl_scale.core.errors import DataError
from zsl_scale.core.paths import shared_data_dir

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
