"""Node loss during `features extract` (issue 23, item 6): kill a worker node's raylet by PID while a
``zsl-scale`` subprocess extracts on the session's multi-node cluster. Ray restarts the lost actor on
another node and re-runs its shard there; the one run completes and its shards are byte-identical to an
uninterrupted run's (each shard is written by the actor that computed it, whole, under a fixed name)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("ray_cluster")


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.parquet"))}


def _recorded(out: Path) -> int:
    """Shards the driver has recorded in the manifest so far."""
    try:
        return len(json.loads((out / "manifest.json").read_text())["shards"])
    except (OSError, ValueError, KeyError):
        return 0


def test_worker_node_killed_during_extract_completes_with_identical_shards(
    ray_cluster, imagenet_samples_dir: Path, tmp_path: Path
) -> None:
    cwd = tmp_path / "cwd"
    (cwd / "imgs").mkdir(parents=True)
    for d in sorted(p for p in imagenet_samples_dir.iterdir() if p.is_dir())[600:640]:
        os.symlink(d, cwd / "imgs" / d.name)
    args = ["features", "extract", "imgs", "--shard-size", "2", "--batch-size", "2", "--workers", "2",
            "--device", "cpu", "--dtype", "float16"]
    ref = ray_cluster.run([*args, "--out", "ref"], cwd)
    assert ref.rc == 0, ref.err[-3000:]

    at_kill: list[int] = []
    res = ray_cluster.run_losing_node([*args, "--out", "lost"], cwd, ready=lambda: _recorded(cwd / "lost") >= 1,
                                      marker="FeatureActor", what="the first shard",
                                      on_kill=lambda: at_kill.append(_recorded(cwd / "lost")))
    out, err = res.out, res.err
    done_at_kill = at_kill[0]
    assert res.rc == 0, err[-3000:]
    assert done_at_kill < 20, "the run ended before the node was lost"
    assert "features: 40 rows in 20 shards (20 written, 0 already done)" in out
    assert "Traceback" not in err
    manifest = json.loads((cwd / "lost" / "manifest.json").read_text())
    assert manifest["complete"] and manifest["rows"] == 40
    assert _digests(cwd / "lost") == _digests(cwd / "ref") and len(_digests(cwd / "ref")) == 20
