"""``kill -9`` of the dist-train driver: no worker survives it, and the re-run resumes to the same weights."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from tests.distributed.test_trainer import final, make_job
from zsl_scale.datasets.synthetic import write_synthetic
from zsl_scale.distributed.lifeline import pid_alive
from zsl_scale.distributed.trainer import fit_spawn

DRIVER = (
    "import pickle, sys; from zsl_scale.core import output_lock; from zsl_scale.distributed.trainer import fit_spawn; "
    "job = pickle.load(open(sys.argv[1], 'rb')); "
    "lock = output_lock(sys.argv[2], 'run folder', command='dist train'); lock.__enter__(); fit_spawn(job, 2)"
)


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def test_killed_driver_takes_its_workers_and_the_rerun_resumes_to_the_same_weights(tmp_path):
    data = (tmp_path, *write_synthetic(tmp_path, rows=400, dim=16, classes=4, emb_dim=8, row_group_rows=100))
    job = make_job(tmp_path / "runs", data, "two", workers=2)
    job.fault = {"epoch": 1, "rank": 0, "marker": str(tmp_path / "hung"), "hang": True}
    (tmp_path / "job.pkl").write_bytes(pickle.dumps(job))
    run_dir = tmp_path / "runs" / "two"
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path / "job.pkl"), str(run_dir)],
                              stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not (tmp_path / "hung").exists():  # rank 0 is mid-epoch 1, after the epoch-0 checkpoint
        assert driver.poll() is None and time.monotonic() < deadline, driver.stderr.read().decode()[-2000:]
        time.sleep(0.2)
    workers = [p for p in _children(driver.pid) if pid_alive(p)]
    assert int((tmp_path / "hung").read_text()) in workers
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    gone_by = time.monotonic() + 10
    while any(pid_alive(p) for p in workers) and time.monotonic() < gone_by:
        time.sleep(0.2)
    assert [p for p in workers if pid_alive(p)] == []  # none alive 10 s after the kill
    assert (run_dir / ".zsl-scale.lock").is_file()  # left by the dead driver: taken over below

    job.fault = None
    from zsl_scale.core import output_lock

    with output_lock(run_dir, "run folder"):
        fit_spawn(job, 2)  # resumes from the epoch-1 checkpoint
    params, history = final(run_dir)
    assert not list(run_dir.glob(".tmp_ckpt_*")) and not (run_dir / ".zsl-scale.lock").exists()
    fresh = make_job(tmp_path / "ref", data, "two", workers=2)
    fit_spawn(fresh, 2)
    ref_params, ref_history = final(tmp_path / "ref" / "two")
    np.testing.assert_array_equal(params, ref_params)
    assert [r["loss"] for r in history] == [r["loss"] for r in ref_history]
