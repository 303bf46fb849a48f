"""Our split set against Xian et al.'s: the restricted 2H / 3H agree up to animal.n.01 and its children."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli
from zsl_scale.core.errors import DataError
from zsl_scale.imagenet import hierarchy as H
from zsl_scale.imagenet.reference import compare_set, explain

COMMITTED = Path(__file__).resolve().parents[2] / "splits"
ANIMAL, TRILOBITE = "n00015388", "n01768244"


def test_compare_set_restricted_to_xian_all() -> None:
    rows = {(r.ours, r.within): r.comparison for r in compare_set("xian2018", COMMITTED)}
    assert list(rows) == [("2H", None), ("2H", "xian2018/All"), ("3H", None), ("3H", "xian2018/All"), ("All", None)]
    two, three = rows[("2H", "xian2018/All")], rows[("3H", "xian2018/All")]
    assert (two.built, two.reference, two.overlap, two.only_built) == (1508, 1509, 1508, [])
    assert (three.built, three.reference, three.overlap, three.only_built) == (7635, 7678, 7635, [])
    assert two.only_reference == [ANIMAL] and three.only_reference[0] == ANIMAL
    assert len(three.only_reference) == 43 < 0.01 * 7678  # the bound: well under 1 % of 3H
    assert rows[("All", None)].recall == 1.0 and rows[("All", None)].overlap == 20345


def test_residuals_are_animal_and_its_children(graph_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZSL_SCALE_CACHE", str(graph_cache))
    hier = H.load_hierarchy()
    rows = {(r.ours, r.within): r.comparison for r in compare_set("xian2018", COMMITTED)}
    xall = set(run_split("xian2018/All"))
    residual = rows[("3H", "xian2018/All")].only_reference
    ours = set(run_split("3H"))  # animal's other children (invertebrate, …) are within 3 hops anyway
    assert residual == sorted({ANIMAL} | (set(hier.children(ANIMAL)) & xall) - ours)
    (animal, pest) = explain(hier, [ANIMAL, "n01314388"])
    assert animal.path == ["<root>", "animal.n.01"] and (animal.nearest_seen, animal.distance) == (TRILOBITE, 3)
    assert pest.path == ["<root>", "animal.n.01", "pest.n.04"] and pest.distance == 4


def run_split(name: str) -> list[str]:
    from zsl_scale.imagenet.stored import load_split

    return load_split(name, COMMITTED)


def test_compare_cli_set_and_explain(graph_cache: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ZSL_SCALE_CACHE", str(graph_cache))
    assert run_cli(["splits", "compare", "--set", "xian2018", "--root", str(COMMITTED), "--explain"]) == 0
    out = capsys.readouterr().out
    assert "3H ∩ xian2018/All │ xian2018/3H  │ 7635    │ 7678" in out and "0.9944" in out
    assert "only in xian2018/3H: 43" in out
    assert f"{ANIMAL} animal.n.01: 3 edge(s) from 1K {TRILOBITE}; path <root> > animal.n.01" in out


def test_compare_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["splits", "compare", "2H", "xian2018/2h", "--root", str(COMMITTED)]) == 2
    assert "did you mean xian2018/2H" in capsys.readouterr().err
    with pytest.raises(DataError, match="unknown reference split set 'xian'"):
        compare_set("xian", COMMITTED)
