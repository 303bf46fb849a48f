"""`zsl-scale evaluate --method NAME` on a tiny bundle: results files side by side; unknown names get a hint."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.protocol.test_methods import planted
from zsl_scale.datasets.bundle import save_bundle
from zsl_scale.results import read_result


def test_evaluate_two_methods_then_leaderboard(tmp_path: Path, capsys) -> None:
    bundle = save_bundle(planted(), tmp_path / "planted", feature_dtype="float32")
    out = tmp_path / "run"
    assert run_cli(["evaluate", str(bundle), "--method", "eszsl,sje", "--device", "cpu", "--out", str(out),
                    "--set", "eval.val_folds=1"]) == 0
    files = sorted(p.name for p in (out / "results").glob("*.json"))
    assert files == ["planted__xlsa17__ESZSL__gzsl__seed0.json", "planted__xlsa17__SJE__gzsl__seed0.json"]
    assert read_result(out / "results" / files[1]).extra["selection"]["gzsl"]["hyper"]["lr"] in (0.01, 0.1)
    assert "ESZSL" in capsys.readouterr().out
    assert run_cli(["leaderboard", str(out / "results"), "--out", str(tmp_path / "board")]) == 0
    md = (tmp_path / "board" / "leaderboard.md").read_text()
    assert "| ESZSL | ours | validation |" in md and "| SJE | ours | validation |" in md


def test_grid_option_narrows_the_search_and_is_recorded(tmp_path: Path) -> None:
    bundle = save_bundle(planted(), tmp_path / "planted", feature_dtype="float32")
    out = tmp_path / "run"
    assert run_cli(["evaluate", str(bundle), "--method", "eszsl", "--grid", "{gamma: 1, lam: [0.1, 10]}",
                    "--device", "cpu", "--out", str(out), "--set", "eval.val_folds=1"]) == 0
    rec = read_result(out / "results" / "planted__xlsa17__ESZSL__gzsl__seed0.json")
    assert rec.config["method"]["grid"] == {"gamma": [1], "lam": [0.1, 10]}
    assert rec.extra["selection"]["gzsl"]["hyper"]["gamma"] == 1


@pytest.mark.parametrize(("args", "msg"), [
    (["--method", "eszsl", "--grid", "{gama: 1}"], "did you mean 'gamma'"),
    (["--method", "eszsl,sje", "--grid", "{lr: 1}"], "exactly one --method"),
    (["--method", "sje", "--grid", "[1, 2]"], "must be a mapping"),
    (["--method", "sje", "--grid", "{lr: [1"], "not valid YAML")])
def test_bad_grid_is_one_error_line(args: list[str], msg: str, capsys) -> None:
    assert run_cli(["evaluate", "flo", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and msg in err[0], err


@pytest.mark.parametrize(("name", "hint"), [("eszl", "did you mean 'eszsl'"), ("fclsgan", "did you mean 'fclswgan'")])
def test_unknown_method_is_one_error_line_with_a_suggestion(name: str, hint: str, capsys) -> None:
    assert run_cli(["evaluate", "flo", "--method", name]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: unknown method") and hint in err[0]
