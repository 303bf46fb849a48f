"""`features extract` the way cluster users run it: a ``zsl-scale`` subprocess joining the session's multi-node
Ray cluster through RAY_ADDRESS, with relative paths from a working folder that is not the data's."""

from __future__ import annotations

import hashlib
import os
import re
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


def test_busy_cluster_wait_says_so_and_gives_up_after_wait_timeout(ray_cluster, ray_session, imagenet_samples_dir,
                                                                   tmp_path: Path) -> None:
    """Issue 23, item 4: a request the cluster can satisfy, but not now (every CPU held by another job's placement
    group), prints ``waiting for N CPUs`` and, with ``--wait-timeout``, ends as one ``error:`` line."""
    from ray.util.placement_group import placement_group, remove_placement_group

    cwd = tmp_path / "cwd"
    (cwd / "imgs").mkdir(parents=True)
    first = sorted(p for p in imagenet_samples_dir.iterdir() if p.is_dir())[0]
    os.symlink(first, cwd / "imgs" / first.name)
    cpus = int(ray_session.cluster_resources()["CPU"])
    held = placement_group([{"CPU": 1}] * cpus, strategy="SPREAD")
    ray_session.get(held.ready(), timeout=60)
    try:
        res = ray_cluster.run(["features", "extract", "imgs", "--out", "out", "--workers", "1", "--device", "cpu",
                               "--wait-timeout", "3"], cwd, timeout=180)
    finally:
        remove_placement_group(held)
    assert res.rc == 2, res.err[-3000:]
    assert "features: waiting for 1 CPUs (cluster has 0 free)" in res.err
    (line,) = res.error_lines()
    assert re.match(r"error: waited [34] s for 1 CPUs \(cluster has 0 free\); .* raise --wait-timeout$", line), line
    assert not (cwd / "out").exists() or not list((cwd / "out").glob("*.parquet"))
