"""Each case of issue 16: one ``error:`` line, exit code 2, and no file of another run touched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.protocol.test_evaluate import separable_benchmark
from zsl_scale.core import PACKAGE_DATA, DataError, dump_config, load_config, output_lock, sha256_file
from zsl_scale.datasets.bundle import load_bundle, save_bundle


def _one_error(capsys, code: int, *needles: str) -> str:
    """The one ``error:`` line on stderr (progress lines logged before it, e.g. "benchmark …", may precede it)."""
    lines = capsys.readouterr().err.strip().splitlines()
    err = [line for line in lines if line.startswith("error")]
    assert code == 2 and len(err) == 1 and lines[-1] == err[0] and "Traceback" not in "".join(lines), lines
    for needle in needles:
        assert needle in err[0], err[0]
    return err[0]


@pytest.fixture
def bench(tmp_path) -> Path:
    return save_bundle(separable_benchmark(), tmp_path / "bench", feature_dtype="float32")


def _evaluate(bench: Path, out: Path, *extra: str) -> int:
    return run_cli(["evaluate", str(bench), "--out", str(out), "--set", "train.epochs=1", "--device", "cpu", *extra])


@pytest.mark.parametrize("damage", ["truncated", "random"])
def test_unreadable_bundle_parquet(bench, tmp_path, capsys, damage):
    f = bench / "classes.parquet"
    f.write_bytes(f.read_bytes()[:40] if damage == "truncated" else os.urandom(2000))
    _one_error(capsys, _evaluate(bench, tmp_path / "run"), "classes.parquet has sha256")
    meta = json.loads((bench / "benchmark.json").read_text())  # re-recorded: the parquet reader refuses it
    meta["sha256"]["classes.parquet"] = sha256_file(f)
    (bench / "benchmark.json").write_text(json.dumps(meta))
    _one_error(capsys, _evaluate(bench, tmp_path / "run"), "cannot read classes.parquet as parquet")
    assert not (tmp_path / "run").exists()


def test_random_bytes_model_file(bench, tmp_path, capsys):
    (tmp_path / "model.pt").write_bytes(os.urandom(3000))
    _one_error(capsys, _evaluate(bench, tmp_path / "run", "--model", str(tmp_path / "model.pt")),
               "cannot load model checkpoint")
    assert not (tmp_path / "run").exists()


def test_out_is_a_file(bench, tmp_path, capsys):
    (tmp_path / "run").write_text("keep me\n")
    _one_error(capsys, _evaluate(bench, tmp_path / "run"), "is a file, not a folder")
    assert (tmp_path / "run").read_text() == "keep me\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_out_not_writable(bench, tmp_path, capsys):
    (tmp_path / "ro").mkdir(mode=0o555)
    _one_error(capsys, _evaluate(bench, tmp_path / "ro" / "run"), "not writable")


def test_imagenet_evaluate_out_is_a_file_fails_before_scoring(tmp_path, capsys):
    (tmp_path / "out").write_text("x")
    code = run_cli(["evaluate", "imagenet", "--classifier", str(tmp_path / "none.pt"), "--queries", str(tmp_path),
                    "--splits", "2H", "--out", str(tmp_path / "out")])
    _one_error(capsys, code, "--out", "is a file")


def test_dist_train_storage_is_a_file(tmp_path, capsys):
    (tmp_path / "store").write_text("x")
    code = run_cli(["dist", "train", "--features", str(tmp_path), "--embeddings", str(tmp_path / "e.parquet"),
                    "--storage", str(tmp_path / "store"), "--runner", "local"])
    _one_error(capsys, code, "--storage", "is a file")


def test_malformed_yaml(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("train:\n  epochs: [1\n  lr: 2\n")
    _one_error(capsys, run_cli(["evaluate", "flo", "-c", str(tmp_path / "c.yaml")]), "invalid YAML", "line 3")


@pytest.mark.parametrize(("args", "needle"), [
    (["--set", "classifier.epochs=-1"], "classifier.epochs"),
    (["--set", "classifier.epochs=0"], "classifier.epochs"),
    (["--shots=-1"], "eval.shots"),
])
def test_bad_values_refused(bench, tmp_path, capsys, args, needle):
    _one_error(capsys, _evaluate(bench, tmp_path / "run", *args), needle)
    assert not (tmp_path / "run").exists()


def test_class_embeddings_with_extra_or_missing_rows(tmp_path):
    from scipy.io import savemat

    from zsl_scale.datasets.bundle import load_xlsa17

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(1, 5), 5)
    savemat(tmp_path / "res101.mat", {"features": rng.random((8, 20)), "labels": labels[:, None]})
    locs = {"trainval_loc": np.arange(1, 11), "train_loc": np.arange(1, 6), "val_loc": np.arange(6, 11),
            "test_seen_loc": np.arange(1, 3), "test_unseen_loc": np.arange(11, 21)}
    savemat(tmp_path / "att_splits.mat", {"att": rng.random((3, 4)), **{k: v[:, None] for k, v in locs.items()}})
    load_xlsa17(tmp_path / "res101.mat", tmp_path / "att_splits.mat")  # the right size loads
    for rows in (6, 3):
        with pytest.raises(DataError, match=f"class-embedding matrix has {rows} rows but the benchmark has 4"):
            load_xlsa17(tmp_path / "res101.mat", tmp_path / "att_splits.mat", class_embeddings=rng.random((rows, 3)))


def test_empty_split_is_refused(tmp_path):
    from zsl_scale.scoring.imagenet import make_inputs

    with pytest.raises(DataError, match="split 2H has no classes"):
        make_inputs({"seen": ["a"], "splits": {"2H": []}}, tmp_path / "c.pt", tmp_path, {}, {})


def test_provenance_hashes_the_bytes_of_every_file(bench):
    import pyarrow.parquet as pq

    from zsl_scale.core import sha256_json

    before = sha256_json(load_bundle(bench).info["files_sha256"])
    table = pq.read_table(bench / "classes.parquet")
    pq.write_table(table, bench / "classes.parquet", compression="gzip")  # same rows, other bytes
    with pytest.raises(DataError, match=r"classes\.parquet has sha256 .* but benchmark\.json records"):
        load_bundle(bench)  # the recorded digest no longer matches: refused
    meta = json.loads((bench / "benchmark.json").read_text())
    meta["sha256"]["classes.parquet"] = sha256_file(bench / "classes.parquet")
    (bench / "benchmark.json").write_text(json.dumps(meta))  # re-recorded: accepted, and provenance follows
    after = load_bundle(bench).info["files_sha256"]
    assert sha256_json(after) != before and set(after) == {"benchmark.json", "features.parquet", "classes.parquet",
                                                           "splits.parquet"}


def test_second_writer_is_refused_naming_the_holder(bench, tmp_path, capsys):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        out = tmp_path / "run"
        out.mkdir()
        (out / ".zsl-scale.lock").write_text(
            f'{{"pid": {holder.pid}, "host": "{os.uname().nodename}", "command": "zsl-scale demo"}}\n')
        (out / "config.yaml").write_text("theirs\n")
        _one_error(capsys, _evaluate(bench, out), f"in use by another run (pid {holder.pid}", "zsl-scale demo")
        assert sorted(p.name for p in out.iterdir()) == [".zsl-scale.lock", "config.yaml"]
        assert (out / "config.yaml").read_text() == "theirs\n"
    finally:
        holder.kill()
        holder.wait()
    with output_lock(out) as locked:  # the holder is dead now: its stale lock is taken over
        assert f'"pid": {os.getpid()}' in (locked / ".zsl-scale.lock").read_text()
    assert not (out / ".zsl-scale.lock").exists()


def test_run_with_other_settings_never_touches_the_finished_run(bench, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    paper = PACKAGE_DATA / "configs" / "paper.yaml"  # what `evaluate` runs; only train.epochs differs
    theirs = dump_config(load_config(paper, ["train.epochs=7"], benchmark=str(bench), device="cpu"))
    (out / "config.yaml").write_text(theirs)
    _one_error(capsys, _evaluate(bench, out), "holds a run with other settings", "train.epochs")
    assert (out / "config.yaml").read_text() == theirs and sorted(p.name for p in out.iterdir()) == ["config.yaml"]
    # A failing run (bad benchmark) does not touch it either.
    _one_error(capsys, _evaluate(tmp_path / "nosuch", out), "unknown benchmark")
    assert (out / "config.yaml").read_text() == theirs


def test_stale_partial_checkpoint_is_removed_on_resume(tmp_path):
    from zsl_scale.distributed.state import preflight_run_dir

    (tmp_path / "run" / ".tmp_ckpt_abc").mkdir(parents=True)
    (tmp_path / "run" / ".tmp_ckpt_abc" / "state.pt").write_bytes(b"x" * 100)
    assert preflight_run_dir(tmp_path / "run", {}) == 0
    assert not list((tmp_path / "run").iterdir())


def test_untrusted_images_bounded_with_stable_reasons():
    import io

    from PIL import Image

    from zsl_scale.features.backbones import Preprocess
    from zsl_scale.features.inputs import MAX_PIXELS, ImageRejected, check_image_size, decode_image, skip_reason

    spec = Preprocess(8, 8, "bilinear", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    strip = io.BytesIO()
    Image.new("RGB", (400, 4)).save(strip, format="PNG")
    with pytest.raises(ImageRejected, match="aspect ratio"):
        decode_image(strip.getvalue(), spec)
    with pytest.raises(ImageRejected, match="exceeds the limit"):
        check_image_size(MAX_PIXELS // 1000 + 1, 1000)
    check_image_size(224, 224)
    reasons = set()
    for _ in range(2):
        try:
            decode_image(b"not an image", spec)
        except Exception as exc:  # PIL's own error type
            reasons.add(skip_reason(exc))
    assert len(reasons) == 1 and "0x" not in next(iter(reasons)) and "<image bytes>" in next(iter(reasons))


def test_a_corrupt_image_is_skipped_but_a_bug_is_not(tmp_path, monkeypatch):
    import io

    from PIL import Image

    from zsl_scale.features import inputs
    from zsl_scale.features.backbones import Preprocess

    spec = Preprocess(8, 8, "bilinear", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    jpeg = io.BytesIO()
    Image.effect_noise((64, 48), 40).convert("RGB").save(jpeg, format="JPEG")
    good, corrupt = tmp_path / "good.jpg", tmp_path / "corrupt.jpg"
    good.write_bytes(jpeg.getvalue())
    corrupt.write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])  # a truncated JPEG
    img, reason = inputs.load_image(["a", str(good), -1, -1], spec)
    assert img is not None and img.shape == (8, 8, 3) and reason == ""
    img, reason = inputs.load_image(["b", str(corrupt), -1, -1], spec)
    assert img is None and reason.startswith("OSError: image file is truncated")

    def buggy(image, spec):
        raise TypeError("a bug in preprocessing")

    monkeypatch.setattr(inputs, "preprocess_image", buggy)
    with pytest.raises(TypeError, match="a bug in preprocessing"):
        inputs.load_image(["a", str(good), -1, -1], spec)
    img, reason = inputs.load_image(["b", str(corrupt), -1, -1], spec)  # still skipped, before preprocessing
    assert img is None and reason.startswith("OSError")
