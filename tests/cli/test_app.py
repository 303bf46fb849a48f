"""The CLI end to end on a tiny benchmark, and bad input: one error line, exit 2, nothing half-written."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import run_cli
from tests.protocol.test_evaluate import separable_benchmark
from zsl_scale.core import sha256_file
from zsl_scale.datasets.bundle import save_bundle
from zsl_scale.results.schema import read_result

FAST = ["--set", "train.epochs=2", "--set", "train.batch_size=8", "--set", "classifier.max_epochs=2",
        "--set", "classifier.seen_samples=10", "--set", "classifier.unseen_samples=20", "--device", "cpu"]


def test_evaluate_writes_results_config_and_report(tmp_path, capsys) -> None:
    save_bundle(separable_benchmark(), tmp_path / "bench")
    out = tmp_path / "run"
    assert run_cli(["evaluate", str(tmp_path / "bench"), "--out", str(out), "--shots", "0,1", *FAST]) == 0
    files = sorted(p.name for p in (out / "results").iterdir())
    assert files == ["separable__xlsa17__CADA-VAE__gfsl-1__seed0.json", "separable__xlsa17__CADA-VAE__gzsl__seed0.json"]
    rec = read_result(out / "results" / files[1])
    assert pytest.approx(2 * rec.metrics.S * rec.metrics.U / (rec.metrics.S + rec.metrics.U)) == rec.metrics.H
    assert rec.config["train"]["epochs"] == 2 and len(rec.config_sha256) == 64
    assert {"git_commit", "packages", "date", "device", "torch_env"} <= set(rec.provenance)
    assert rec.extra["selection"]["gzsl_epochs"] in (1, 2)
    assert rec.selection == "validation" and rec.selection_source == "validation"
    assert "train:" in (out / "config.yaml").read_text()
    assert "| gzsl |" in (out / "report.md").read_text()
    assert (out / "vae_history_gzsl.csv").read_text().startswith("epoch,loss,recon,kl,cross,distance,beta")
    assert "H" in capsys.readouterr().out


def test_authors_preset_is_fixed_selection_with_its_source(tmp_path) -> None:
    """The authors preset: their σ, 23 classifier epochs set for CUB, no validation phase, labelled as such."""
    save_bundle(separable_benchmark(), tmp_path / "bench")
    out = tmp_path / "authors"
    fast = ["--set", "train.epochs=2", "--set", "train.batch_size=8", "--set", "classifier.seen_samples=10",
            "--set", "classifier.unseen_samples=20", "--device", "cpu"]
    assert run_cli(["evaluate", str(tmp_path / "bench"), "--preset", "authors", "--out", str(out), *fast]) == 0
    rec = read_result(next((out / "results").glob("*.json")))
    assert rec.selection == "fixed" and "authors' CUB setting" in rec.selection_source
    assert rec.extra["selection"]["gzsl_epochs"] == 23 and "val_curves" not in rec.extra["selection"]
    assert rec.config["model"]["reparam"] == "authors"
    curve = rec.extra["test_curve_never_used_for_selection"]["H"]
    assert len(curve) == 23 and curve[-1] == pytest.approx(rec.metrics.H / 100)  # reported H = the last epoch's
    assert "**fixed** at 23" in (out / "report.md").read_text()
    # a command-line override of the epochs replaces the preset's reason
    assert run_cli(["evaluate", str(tmp_path / "bench"), "--preset", "authors", "--out", str(tmp_path / "o"), *fast,
                    "--set", "classifier.epochs=3"]) == 0
    rec = read_result(next((tmp_path / "o" / "results").glob("*.json")))
    assert rec.selection == "fixed" and rec.selection_source == "set on the command line (classifier.epochs=3)"


def _bad_bundle(tmp_path, mutate) -> str:
    bench = separable_benchmark()
    save_bundle(bench, tmp_path / "bench", feature_dtype="float32")
    mutate(tmp_path / "bench")
    return str(tmp_path / "bench")


def _nan_features(d) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pq.read_table(d / "features.parquet")
    x = t.column("feature").combine_chunks().flatten().to_numpy().copy()
    x[5] = np.nan
    col = pa.FixedSizeListArray.from_arrays(pa.array(x, pa.float32()), t.column("feature").type.list_size)
    pq.write_table(t.set_column(2, "feature", col), d / "features.parquet")
    meta = json.loads((d / "benchmark.json").read_text())
    meta["sha256"]["features.parquet"] = sha256_file(d / "features.parquet")  # recorded: only the NaN is wrong
    (d / "benchmark.json").write_text(json.dumps(meta))


@pytest.mark.parametrize(("target", "message"), [
    ("nosuch", "unknown benchmark 'nosuch'"),
    ("flox", "did you mean 'flo'"),
    ("missing-dir/", "unknown benchmark"),
    ("nan", "feature rows contain NaN"),
])
def test_bad_input_one_line_exit_2_no_results(tmp_path, capsys, target: str, message: str) -> None:
    bench = _bad_bundle(tmp_path, _nan_features) if target == "nan" else target
    out = tmp_path / "run"
    assert run_cli(["evaluate", bench, "--out", str(out), *FAST]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not (out / "results").exists()


def test_bad_override_is_one_line(capsys) -> None:
    assert run_cli(["evaluate", "flo", "--set", "train.epochs=zero"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train.epochs" in err[0]


def test_unknown_device(capsys) -> None:
    assert run_cli(["evaluate", "flo", "--device", "tpu9"]) == 2
    assert "unknown device" in capsys.readouterr().err


def test_other_seeds_reuse_validation_choice(tmp_path) -> None:
    save_bundle(separable_benchmark(), tmp_path / "bench")
    s0, s1 = tmp_path / "s0", tmp_path / "s1"
    assert run_cli(["evaluate", str(tmp_path / "bench"), "--out", str(s0), *FAST]) == 0
    chosen = json.loads((s0 / "selection.json").read_text())["settings"]["gzsl"]
    assert run_cli(["evaluate", str(tmp_path / "bench"), "--out", str(s1), "--seed", "1",
                    "--set", f"eval.selection_from={s0}", *FAST]) == 0
    rec = read_result(s1 / "results" / "separable__xlsa17__CADA-VAE__gzsl__seed1.json")
    assert rec.extra["selection"]["gzsl_epochs"] == chosen["gzsl_epochs"]
    assert rec.extra["selection"]["source"].startswith("validation of")
    assert not (s1 / "selection.json").exists()  # seed 1 ran no validation of its own
    assert run_cli(["evaluate", str(tmp_path / "bench"), "--out", str(tmp_path / "s2"), "--variant", "da",
                    "--set", f"eval.selection_from={s0}", *FAST]) == 2  # another method's choice is refused


def test_train_then_evaluate_model_equals_one_shot_evaluate(tmp_path) -> None:
    save_bundle(separable_benchmark(), tmp_path / "bench")
    bench = str(tmp_path / "bench")
    assert run_cli(["evaluate", bench, "--out", str(tmp_path / "full"), *FAST]) == 0
    assert run_cli(["train", bench, "--out", str(tmp_path / "t"), *FAST]) == 0
    assert run_cli(["evaluate", bench, "--out", str(tmp_path / "two"), "--model", str(tmp_path / "t" / "model.pt"),
                    *FAST]) == 0
    name = "separable__xlsa17__CADA-VAE__gzsl__seed0.json"
    full, two = read_result(tmp_path / "full" / "results" / name), read_result(tmp_path / "two" / "results" / name)
    assert full.metrics == two.metrics
    assert len(two.extra["vae_checkpoint"]["sha256"]) == 64
    # A checkpoint trained with another seed is refused.
    assert run_cli(["evaluate", bench, "--out", str(tmp_path / "bad"), "--seed", "3",
                    "--model", str(tmp_path / "t" / "model.pt"), *FAST]) == 2


@pytest.mark.parametrize(("argv", "message"), [
    (["demo", "--bogus"], "No such option: --bogus"),
    (["evaluat", "flo"], "Did you mean 'evaluate'?"),
    (["leaderboard"], "Missing argument"),
    (["evaluate", "imagenet", "--bogus"], "No such option: --bogus"),
    (["splits", "show", "--bogus"], "No such option: --bogus"),
])
def test_usage_errors_are_one_line_exit_2(capsys, argv: list[str], message: str) -> None:
    """Under the typer a fresh install resolves (0.29 vendors click as ``typer._click``): no traceback."""
    assert run_cli(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0] and "--help" in err[0], err
