"""Issue 28, each case as a user hits it (``zsl-scale`` as a subprocess, cwd not the data's): one ``error:``
line, exit code 2, nothing written or left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from tests.conftest import run_cli
from tests.protocol.test_evaluate import separable_benchmark
from zsl_scale.core import sha256_file
from zsl_scale.datasets.bundle import save_bundle

REPO = Path(__file__).resolve().parents[2]


def zsl(args: list[str], cwd: Path, timeout: float = 240) -> tuple[int, list[str]]:
    """``zsl-scale ARGS`` as a user runs it; returns the exit code and the stderr lines."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_AUTH_MODE": "disabled"}
    env.pop("ZSL_SCALE_DEBUG", None)
    proc = subprocess.run([sys.executable, "-m", "zsl_scale", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    return proc.returncode, proc.stderr.strip().splitlines()


@pytest.fixture
def cli(monkeypatch, capsys):
    """``cli(args, cwd, sub)``: ``zsl-scale ARGS`` in ``cwd`` as a subprocess (``sub``, how users hit it) or
    in-process (parametrised variants: a subprocess start costs seconds on a loaded CI machine)."""

    def call(args: list[str], cwd: Path, sub: bool = False) -> tuple[int, list[str]]:
        if sub:
            return zsl(args, cwd)
        monkeypatch.chdir(cwd)
        capsys.readouterr()
        code = run_cli(args)
        return code, capsys.readouterr().err.strip().splitlines()

    return call


def one_error(code: int, lines: list[str], *needles: str) -> str:
    """Exit 2 and exactly one ``error:`` line, the last one (progress lines may come before it), no traceback."""
    errors = [line for line in lines if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and lines[-1] == errors[0], lines[-20:]
    assert not any("Traceback" in line for line in lines), lines[-20:]
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return save_bundle(separable_benchmark(), tmp_path / "bench", feature_dtype="float32")


# 1. A changed bundle is refused: the files' sha256 and the class count in benchmark.json are checked on open.
def test_bundle_with_an_extra_class_row_is_refused(bundle: Path, tmp_path: Path) -> None:
    classes = pq.read_table(bundle / "classes.parquet")
    extra = classes.slice(0, 1).set_column(0, "label", pa.array([classes.num_rows], pa.int32()))
    pq.write_table(pa.concat_tables([classes, extra]), bundle / "classes.parquet")
    old = json.loads((bundle / "benchmark.json").read_text())["sha256"]["classes.parquet"]
    (tmp_path / "cwd").mkdir()
    args = ["evaluate", str(bundle), "--out", "run", "--set", "train.epochs=1", "--device", "cpu"]
    err = one_error(*zsl(args, tmp_path / "cwd"), "classes.parquet has sha256", old,
                    sha256_file(bundle / "classes.parquet"))
    assert "benchmark.json records" in err and tree(tmp_path / "cwd") == []
    # The digest re-recorded, the class count still says the old number: refused with both counts.
    meta = json.loads((bundle / "benchmark.json").read_text())
    meta["sha256"]["classes.parquet"] = sha256_file(bundle / "classes.parquet")
    (bundle / "benchmark.json").write_text(json.dumps(meta))
    code = run_cli(["evaluate", str(bundle), "--out", str(tmp_path / "cwd" / "run")])
    assert code == 2 and tree(tmp_path / "cwd") == []


def test_bundle_class_count_is_checked(bundle: Path, tmp_path: Path, capsys) -> None:
    meta = json.loads((bundle / "benchmark.json").read_text())
    meta["n_classes"] += 1
    (bundle / "benchmark.json").write_text(json.dumps(meta))
    assert run_cli(["evaluate", str(bundle), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert f"classes.parquet has {meta['n_classes'] - 1} rows but benchmark.json records n_classes = " \
           f"{meta['n_classes']}" in err and not (tmp_path / "run").exists()


# 2. A bad distributed checkpoint under 2 spawned workers (and under Ray): the worker's own line, exit 2.
@pytest.fixture(scope="module")
def dist_run(tmp_path_factory) -> tuple[Path, list[str]]:
    from zsl_scale.datasets.synthetic import write_synthetic

    root = tmp_path_factory.mktemp("dist28")
    feats, emb = write_synthetic(root, rows=200, dim=16, classes=4, emb_dim=6, row_group_rows=100)
    base = ["dist", "train", "--features", str(feats), "--embeddings", str(emb), "--storage", str(root / "runs"),
            "--name", "r", "--set", "model.imagenet=false", "--set", "scale.streams=2", "--set",
            "train.batch_size=50"]
    assert run_cli([*base, "--runner", "local", "--workers", "1", "--epochs", "1"]) == 0
    return root, base


@pytest.mark.parametrize(("runner", "workers"), [("spawn", "2")])
@pytest.mark.parametrize("damage", ["random"])
def test_bad_checkpoint_in_a_worker_is_one_line(dist_run, tmp_path: Path, runner: str, workers: str,
                                                damage: str) -> None:
    root, base = dist_run
    state = next((root / "runs" / "r").glob("checkpoint_*/state.pt"))
    good = state.read_bytes()
    state.write_bytes(os.urandom(4096))
    before = tree(root / "runs")
    try:
        code, lines = zsl([*base, "--runner", runner, "--workers", workers, "--epochs", "2",
                           "--set", "scale.max_failures=0"], tmp_path)
    finally:
        state.write_bytes(good)
    one_error(code, lines, "cannot load checkpoint", "state.pt")
    assert tree(root / "runs") == before


def test_ray_wrapped_user_error_is_the_workers_own_line() -> None:
    """Ray hands the driver a ``RayTaskError`` whose class also derives from the worker's error and whose
    message is the worker's traceback; Ray Train wraps that again. The user sees the worker's own message."""
    exceptions = pytest.importorskip("ray.exceptions")
    from zsl_scale.core import DataError, worker_user_error

    original = DataError("cannot load checkpoint x/state.pt: not a plain-data torch file")
    wrapped = exceptions.RayTaskError("train_fn", "Traceback (most recent call last): ...", original)
    dual = wrapped.as_instanceof_cause()
    assert isinstance(dual, DataError) and str(dual) != str(original)  # its message is not the worker's
    for exc in (dual, RuntimeError("Training failed"), wrapped):
        if exc.__class__ is RuntimeError:
            exc.__cause__ = dual
        found = worker_user_error(exc)
        assert type(found) is DataError and str(found) == str(original)
    assert worker_user_error(RuntimeError("a bug")) is None


# 3. A grid value that is not a number (or out of range): one line, and no config_<method>.yaml left.
@pytest.mark.parametrize(("grid", "needle"), [("{gamma: [abc]}", "gamma must be a number, got 'abc'"),
                                              ("{gamma: [-1]}", "gamma must be > 0, got -1"),
                                              ("{lam: true}", "lam must be a number")])
def test_bad_grid_values(cli, tmp_path: Path, grid: str, needle: str) -> None:
    args = ["evaluate", "flo", "--method", "eszsl", "--grid", grid, "--out", "run"]
    one_error(*cli(args, tmp_path, sub="abc" in grid), needle)
    assert tree(tmp_path) == []


# 4. Leaderboard over a folder with a random-bytes results file; non-results JSON is named, not silently skipped.
def test_leaderboard_random_bytes_json(tmp_path: Path, capsys) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "flo__xlsa17__x__gzsl__seed0.json").write_bytes(os.urandom(300) + b"\xff\xfe")
    (results / "notes.json").write_text('{"other": "schema"}')
    code, lines = zsl(["leaderboard", "results", "--out", "new/deeper/board"], tmp_path)
    one_error(code, lines, "cannot read results file", "flo__xlsa17__x__gzsl__seed0.json")
    assert len(lines) == 1 and tree(tmp_path) == ["results", "results/flo__xlsa17__x__gzsl__seed0.json",
                                                  "results/notes.json"]
    # A valid results file beside the JSON of another schema: built, and the skipped file is named.
    from zsl_scale.results import Metrics, ResultRecord, write_result

    (results / "flo__xlsa17__x__gzsl__seed0.json").unlink()
    write_result(ResultRecord(dataset="flo", split="xlsa17", method="ESZSL", seed=0, setting="gzsl",
                              selection="validation", metrics=Metrics(S=1.0, U=2.0, H=1.3), config={},
                              config_sha256="0" * 64), results)
    assert run_cli(["leaderboard", str(results), "--out", str(tmp_path / "board")]) == 0
    err = capsys.readouterr().err
    assert "note: skipped 1 .json file(s) not named like results" in err and "notes.json" in err


# 5. A job is validated whole before its first stage runs; --dry-run runs exactly that validation.
@pytest.fixture
def bench_job(tmp_path: Path):
    """A small-benchmark job whose inputs exist (contents are the stages' business, never reached here)."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "jpg64.tar").write_bytes(b"")
    (tmp_path / "data" / "att_splits.mat").write_bytes(b"")
    (tmp_path / "cwd").mkdir()

    def write(stages: list[dict]) -> Path:
        path = tmp_path / "jobs" / "job.yaml"
        path.parent.mkdir(exist_ok=True)
        path.write_text(yaml.safe_dump({"name": "j", "workdir": "../w", "stages": stages}))
        return path

    return write


SPLITS = {"name": "splits", "config": {"benchmark": "../data"}}
FEATURES = {"name": "features", "config": {"source": "@splits/images.tsv"}}


@pytest.mark.parametrize(("stages", "needle"), [
    ([SPLITS, FEATURES, {"name": "embeddings"}, {"name": "validation"}, {"name": "latents"}],
     "stage 'latents' (latents) needs an earlier 'train' stage"),
    ([SPLITS, {"name": "features", "config": {"source": "@nosuch/seen.txt"}}],
     "refers to '@nosuch/seen.txt', but no earlier stage is named 'nosuch'"),
    ([SPLITS, {"name": "features", "config": {"sourse": "@splits/images.tsv"}}],
     "unknown setting 'sourse'; did you mean 'source'?"),
    ([SPLITS, FEATURES, {"name": "embeddings"}, {"name": "validation", "config": {"seed": "x"}}],
     "stage 'validation' (validation): seed: Input should be a valid integer"),
    ([{"name": "splits", "config": {"benchmark": "../nodata"}}], "benchmark: "),
    ([SPLITS, FEATURES, {"name": "embeddings"}, {"name": "validation"},
      {"name": "train", "config": {"runner": "ray", "scale": {"wrokers": 2}}}], "scale: "),
])
def test_invalid_job_fails_before_its_first_stage(cli, bench_job, tmp_path: Path, stages, needle: str) -> None:
    job = bench_job(stages)
    for extra in ([], ["--dry-run"]):
        one_error(*cli(["run", str(job), *extra], tmp_path / "cwd", sub="nosuch" in str(stages)), needle)
        assert not (tmp_path / "w").exists() and tree(tmp_path / "cwd") == []


def test_valid_job_dry_run_plans_every_stage(bench_job, tmp_path: Path, capsys) -> None:
    job = bench_job([SPLITS, FEATURES, {"name": "embeddings"}, {"name": "validation"},
                     {"name": "train", "config": {"runner": "local"}}, {"name": "latents"}, {"name": "score"},
                     {"name": "methods", "config": {"methods": ["eszsl"]}}, {"name": "leaderboard"}])
    assert run_cli(["run", str(job), "--dry-run"]) == 0
    assert "9 to run" in capsys.readouterr().out and not (tmp_path / "w").exists()


# 6. --workdir is relative to the current directory (a file refused); failed runs leave no new parent
#    folders; compressed tars are named as unsupported.
def test_workdir_relative_to_cwd_and_file_refused(cli, bench_job, tmp_path: Path) -> None:
    from zsl_scale.jobs import load_job, workdir_of

    job = bench_job([SPLITS])
    (tmp_path / "cwd" / "afile.txt").write_text("mine\n")
    for extra in ([], ["--dry-run"]):
        one_error(*cli(["run", str(job), "--workdir", "afile.txt", *extra], tmp_path / "cwd", sub=not extra),
                  "afile.txt is a file, not a folder")
    assert (tmp_path / "cwd" / "afile.txt").read_text() == "mine\n" and not (tmp_path / "jobs" / "afile.txt").exists()
    here = Path.cwd()
    try:
        os.chdir(tmp_path / "cwd")
        assert workdir_of(load_job(job), job.parent, "wd") == tmp_path / "cwd" / "wd"
        assert workdir_of(load_job(job), job.parent) == tmp_path / "jobs" / ".." / "w"  # the job's own: its folder
    finally:
        os.chdir(here)


def test_failed_run_removes_the_parent_folders_it_created(cli, tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "flo__xlsa17__x__gzsl__seed0.json").write_text("[1, 2]")
    one_error(*cli(["leaderboard", "results", "--out", "a/b/c/board"], tmp_path), "invalid results file")
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("name", ["n01440764.tar.gz", "n01440764.tgz"])
def test_compressed_tars_are_named_unsupported(cli, tmp_path: Path, name: str) -> None:
    import tarfile

    (tmp_path / "images").mkdir()
    with tarfile.open(tmp_path / "images" / name, "w:gz") as tf:
        tf.add(__file__, arcname="x.JPEG")
    for source in ("images", f"images/{name}"):
        one_error(*cli(["features", "extract", source, "--out", "feats"], tmp_path, sub=source == "images"
                       and name.endswith(".gz")),
                  "compressed tars are not supported", "uncompressed")
        assert not (tmp_path / "feats").exists()
