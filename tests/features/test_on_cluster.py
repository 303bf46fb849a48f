"""`features extract` the way cluster users run it: a ``zsl-scale`` subprocess joining the session's multi-node
Ray cluster through RAY_ADDRESS, with relative paths from a working folder that is not the data's."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("ray_cluster")


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.parquet"))}


def test_extract_on_the_cluster_first_run_and_resumed(ray_cluster, imagenet_samples_dir: Path, tmp_path: Path) -> None:
    cwd = tmp_path / "cwd"
    (cwd / "imgs").mkdir(parents=True)
    for d in sorted(p for p in imagenet_samples_dir.iterdir() if p.is_dir())[:8]:
        os.symlink(d, cwd / "imgs" / d.name)  # a <wnid>/<file> tree, given to the CLI as a relative path
    args = ["features", "extract", "imgs", "--out", "out", "--shard-size", "3", "--batch-size", "3",
            "--workers", "2", "--device", "cpu"]
    first = ray_cluster.run(args, cwd)
    assert first.rc == 0, first.err[-3000:]
    assert "features: 8 rows in 3 shards (3 written, 0 already done)" in first.out
    assert "Traceback" not in first.err and "(raylet)" not in first.err
    before = _digests(cwd / "out")
    assert len(before) == 3
    (cwd / "out" / sorted(before)[1]).unlink()  # a lost shard: the re-run writes it again, and only it
    again = ray_cluster.run(args, cwd)
    assert again.rc == 0, again.err[-3000:]
    assert "(1 written, 2 already done)" in again.out
    assert _digests(cwd / "out") == before
    missing = ray_cluster.run(["features", "extract", "nope", "--out", "o2"], cwd)
    assert missing.rc == 2 and missing.error_lines() == [f"error: input not found: {cwd / 'nope'}"]
