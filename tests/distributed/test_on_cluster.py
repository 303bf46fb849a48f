"""`dist train` / `dist classifier` the way cluster users run them: ``zsl-scale`` subprocesses joining the
session's multi-node Ray cluster through RAY_ADDRESS, from a working folder that is not the data's.

Each test names the defect of issue 23 it pins (they all failed on the code before it)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import CliResult, epochs_done, free_port, run_zsl
from zsl_scale.datasets.synthetic import write_synthetic
from zsl_scale.distributed.export import gather_params, load_final_model

pytestmark = pytest.mark.usefixtures("ray_cluster")


@pytest.fixture(scope="module")
def cwd_data(tmp_path_factory) -> Path:
    """A working folder holding small synthetic shards under ``data/`` (tests pass them relative)."""
    root = tmp_path_factory.mktemp("cluster-cwd")
    write_synthetic(root / "data", rows=400, dim=16, classes=4, emb_dim=8, row_group_rows=100)
    return root


def train_args(name: str, epochs: int, *extra: str, workers: int = 2) -> list[str]:
    return ["dist", "train", "--features", "data/features", "--embeddings", "data/embeddings.parquet",
            "--storage", "runs", "--name", name, "--workers", str(workers), "--epochs", str(epochs),
            "--set", "train.batch_size=50", "--set", "model.imagenet=false", "--set", "scale.exact_sum=true",
            "--set", "scale.block_rows=50", *extra]


def test_missing_relative_path_is_one_line_before_any_worker(ray_cluster, cwd_data) -> None:
    res = ray_cluster.run([*train_args("nofeat", 1)[:2], "--features", "data/nope", *train_args("x", 1)[4:]],
                          cwd_data)
    assert res.rc == 2 and res.error_lines() == [f"error: feature folder not found: {cwd_data / 'data/nope'}"]
    assert "Traceback" not in res.err


def test_impossible_resource_request_is_one_line_with_both_numbers(ray_cluster, cwd_data) -> None:
    """Defect 4: ``cpus_per_worker: 4`` on 1-CPU nodes used to wait silently for ever."""
    res = ray_cluster.run(train_args("big", 1, "--set", "scale.cpus_per_worker=4"), cwd_data, timeout=180)
    assert res.rc == 2, res.err[-2000:]
    (line,) = res.error_lines()
    assert "2 workers × 4 CPUs = 8 CPUs" in line and "has 3 CPUs" in line and "--workers" in line
    res = ray_cluster.run(train_args("wide", 1, "--set", "scale.cpus_per_worker=1.5"), cwd_data, timeout=180)
    assert res.rc == 2 and "largest Ray node has 1" in res.error_lines()[0]


def test_unreachable_address_is_one_line_naming_it(tmp_path) -> None:
    """Defect 5 (second half): a dead address used to retry for 10 minutes with no time limit."""
    address = f"127.0.0.1:{free_port()}"
    res = run_zsl(["dist", "train", "--features", "f", "--embeddings", "e"], tmp_path, address=address,
                  env={"ZSL_SCALE_CONNECT_TIMEOUT": "2"}, timeout=120)
    # the missing inputs are found first, before any connection: one line, no Ray
    assert res.rc == 2 and "feature folder not found" in res.error_lines()[0]
    (tmp_path / "d").mkdir()
    write_synthetic(tmp_path / "d", rows=40, dim=4, classes=2, emb_dim=2)
    res = run_zsl(["dist", "train", "--features", "d/features", "--embeddings", "d/embeddings.parquet",
                   "--storage", "runs", "--set", "model.imagenet=false", "--set", "train.batch_size=8"],
                  tmp_path, address=address, env={"ZSL_SCALE_CONNECT_TIMEOUT": "2"}, timeout=120)
    assert res.rc == 2, res.err[-2000:]
    (line,) = res.error_lines()
    assert f"cannot reach the Ray cluster at {address} within 2 s" in line and "RAY_ADDRESS" in line


def test_stale_cluster_record_is_never_attached_to(tmp_path) -> None:
    """Defect 5: Ray's ``ray_current_cluster`` record of a dead cluster made the next local start raise
    "When connecting to an existing cluster, num_cpus … must not be provided"."""
    import tempfile

    temp = Path(tempfile.mkdtemp(prefix="zs", dir=tempfile.gettempdir()))  # short: Ray's sockets live under it
    (temp / "ray").mkdir(parents=True)
    (temp / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{free_port()}")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(TMPDIR=str(temp), RAY_AUTH_MODE="disabled")
    code = ("import ray; from zsl_scale.core import init_ray; init_ray(cpus=1, object_store_memory=80 * 2**20);"
            "print('CPUS', ray.cluster_resources()['CPU']); ray.shutdown()")
    try:
        proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=180)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "CPUS 1.0" in proc.stdout


EPOCHS = 20  # ~3 s on Ray Train here (0.15 s each): the kill at epoch 2 lands well before the last report


@pytest.fixture(scope="module")
def lost_node_run(ray_cluster, cwd_data) -> CliResult:
    """``dist train`` (2 Ray Train workers, relative paths from the working folder) losing a worker node at epoch 2,
    and its reference: the same run in one process, no Ray (``--runner local``, the same 2 data streams)."""
    ref = run_zsl(train_args("ref", EPOCHS, "--runner", "local", "--set", "scale.streams=2", workers=1), cwd_data,
                  address=None)
    assert ref.rc == 0, ref.err[-3000:]
    run = cwd_data / "runs" / "lost"
    return ray_cluster.run_losing_node(train_args("lost", EPOCHS), cwd_data, ready=lambda: epochs_done(run) >= 2,
                                       marker="RayTrainWorker", what="epoch 2")


def test_resumed_run_after_node_loss_is_bitwise_equal(lost_node_run, cwd_data) -> None:
    """Node loss (issue 23, item 6): kill one worker node (its raylet by PID, and the processes it started)
    while ``dist train`` runs; Ray Train restarts the worker group from the last checkpoint, the terminal gets
    one line about it, and the VAE is bitwise the uninterrupted run's (``scale.exact_sum``: the numbers do not
    depend on which worker held which rows). The uninterrupted run is the reference path, so this also pins
    Ray Train == the local runner, bit for bit.

    Defects 1 and 3 as well: joining RAY_ADDRESS used to fail on ``object_store_memory`` (a traceback), and the
    relative ``--features`` reached the Ray Train workers as a path relative to *their* working folder."""
    out, err, run = lost_node_run.out, lost_node_run.err, cwd_data / "runs" / "lost"
    assert lost_node_run.rc == 0, err[-3000:]
    assert f"trained {EPOCHS} epochs on 400 rows, 4 classes" in out and f"starting, {EPOCHS} epochs" in err
    lost = [line for line in err.splitlines() if " lost" in line or "failed" in line]
    assert len(lost) == 1 and f"full log: {run}/ray.log" in lost[0], err
    checkpoint = int(re.search(r"resuming from checkpoint (\d+) \(attempt 1 of 3\)", lost[0]).group(1))
    # the first epoch's checkpoint (saves come every scale.checkpoint_every_s = 10 s after it, and the run takes
    # ~3 s): the resumed group recomputes epochs 2.. from it, bit for bit. With 8 epochs (1.2 s) the run once reported
    # its last epoch before the node was gone, and "resumed" from it with nothing left to recompute.
    assert 1 <= checkpoint < EPOCHS, lost[0]
    assert "Traceback" not in err and len(err.splitlines()) <= 8, err
    a, b = gather_params(load_final_model(cwd_data / "runs/ref")[0]), gather_params(load_final_model(run)[0])
    np.testing.assert_array_equal(a, b)
    _, _, state = load_final_model(run)
    assert len(state["history"]) == EPOCHS and np.isfinite(state["history"][-1]["loss"])


def test_classifier_and_latents_of_a_cluster_run_with_relative_paths(ray_cluster, lost_node_run, cwd_data) -> None:
    """``dist classifier`` and ``latents generate`` (first run, and resumed after a lost shard) on the run above,
    every path relative to the working folder. (``dist train`` resumed by a re-run: the job tests' killed train
    stage.)"""
    assert lost_node_run.rc == 0, lost_node_run.err[-3000:]
    run = cwd_data / "runs" / "lost"
    clf = ray_cluster.run(["dist", "classifier", "--run", "runs/lost", "--features", "data/features",
                           "--embeddings", "data/embeddings.parquet", "--epochs", "2", "--device", "cpu"], cwd_data)
    assert clf.rc == 0, clf.err[-3000:]
    assert "classifier over 4 classes (4 seen, 0 unseen)" in clf.out and (run / "classifier.pt").is_file()
    lat = ["latents", "generate", "--model", "runs/lost/vae.pt", "--class-embeddings", "data/embeddings.parquet",
           "--per-class", "10", "--shard-rows", "20", "--out", "lat"]
    first = ray_cluster.run(lat, cwd_data)
    assert first.rc == 0, first.err[-3000:]
    assert "latents (class_samples): 40 rows in 2 shards (2 written)" in first.out
    assert "core_worker" not in first.err and "Traceback" not in first.err  # Ray's C++ lines: in lat/ray.log
    shards = sorted((cwd_data / "lat").glob("*.parquet"))
    kept = shards[0].read_bytes()
    shards[0].unlink()  # a lost shard: the re-run writes it again, the same bytes
    again = ray_cluster.run(lat, cwd_data)
    assert again.rc == 0 and "(1 written)" in again.out, again.err[-3000:]
    assert shards[0].read_bytes() == kept
