"""Split builder: committed splits, byte-identical rebuilds, M/L tie rule, compare, and bad input."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import run_cli
from zsl_scale.core.errors import DataError
from zsl_scale.imagenet import hierarchy as H
from zsl_scale.imagenet import splits as S
from zsl_scale.imagenet import stored as ST
from zsl_scale.imagenet.checks import compare_lists
from zsl_scale.imagenet.classes import imagenet_classes
from zsl_scale.imagenet.counts import select_by_count

IN_CI = os.environ.get("CI", "").lower() == "true"
COMMITTED = Path(__file__).resolve().parents[2] / "splits"


@pytest.fixture
def wn_env(graph_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ZSL_SCALE_CACHE", str(graph_cache))
    return graph_cache


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_class_lists() -> None:
    k21, k1 = imagenet_classes("21k"), imagenet_classes("1k")
    assert (len(k21), len(k1), len(set(k21) & set(k1))) == (21841, 1000, 999)
    assert "n04399382" in k1 and "n04399382" not in k21
    assert len(imagenet_classes("all")) == 21842
    assert list(k21) == sorted(k21)


def test_committed_splits_sizes_and_disjointness() -> None:
    seen = set(imagenet_classes("1k"))
    got = {name: ST.load_split(name, COMMITTED) for name in S.STRUCTURAL_SPLITS}
    assert len(got["All"]) == 20842
    assert (len(got["2H"]), len(got["3H"])) == (1548, 7817)  # default hop definition (fall11), see docs/splits.md
    for wnids in got.values():
        assert wnids == sorted(wnids) and len(set(wnids)) == len(wnids)
        assert not seen & set(wnids)
    assert set(got["2H"]) < set(got["3H"]) < set(got["All"])
    assert ST.load_manifest("2H", COMMITTED)["parameters"] == {
        "count": "synsets", "direction": "tree", "graph": "fall11", "hops": 2, "max_edges": 1,
    }
    assert ST.load_manifest("3H", COMMITTED)["inputs"]["wordnet"] == {"edges": "hypernym", "version": "3.0"}


def test_rebuild_is_byte_identical(wn_env: Path, tmp_path: Path) -> None:
    assert run_cli(["splits", "build", "--root", str(tmp_path)]) == 0
    assert run_cli(["splits", "build", "--root", str(tmp_path), "-s", "xian2018"]) == 0  # copied, sha-checked
    built = files_under(tmp_path)
    assert [p.relative_to(tmp_path) for p in built] == [p.relative_to(COMMITTED) for p in files_under(COMMITTED)]
    for p in built:
        assert p.read_bytes() == (COMMITTED / p.relative_to(tmp_path)).read_bytes(), p


def test_validate_committed(wn_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["splits", "validate", "--root", str(COMMITTED)]) == 0
    assert capsys.readouterr().out.count(" ok ") == 3 + 9  # ours (2H, 3H, All) and Xian et al.'s nine


def test_validate_detects_an_edited_split(wn_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    S.build_splits(["All"], root=tmp_path)
    path = tmp_path / "imagenet21k" / "All" / "All.txt"
    path.write_text(path.read_text().replace("n00004475\n", ""))
    assert run_cli(["splits", "validate", "--root", str(tmp_path)]) == 2
    assert "1 split(s) do not match" in capsys.readouterr().err
    with pytest.raises(DataError, match="does not match its manifest"):
        ST.load_split("All", tmp_path)


def test_other_hop_definitions(wn_env: Path) -> None:
    hier = H.load_hierarchy()
    sizes = {}
    for hd in (S.HopDefinition("wordnet", "undirected", "synsets"), S.HopDefinition("wordnet", "directed", "edges")):
        sizes[hd] = [len(S.build_split(n, hier, hops=hd).wnids) for n in ("2H", "3H")]
    assert list(sizes.values()) == [[1548, 5990], [1926, 1994]]
    with pytest.raises(DataError, match="unknown hop graph"):
        S.HopDefinition(graph="tree")


def test_select_by_count_tie_rule() -> None:
    counts = {"n00000005": 3, "n00000002": 3, "n00000003": 1, "n00000004": 0, "n00000001": 3}
    pool = list(counts)
    assert select_by_count(counts, pool, 2, most=True) == ["n00000001", "n00000002"]
    assert select_by_count(counts, pool, 2, most=False) == ["n00000001", "n00000003"]  # 0-count excluded
    with pytest.raises(DataError, match="only 4 classes"):
        select_by_count(counts, pool, 5, most=True)


def synthetic_counts(path: Path, extra: str = "", drop: int = 0) -> dict[str, int]:
    """A count table over all 20,842 candidates with many ties (counts 0..6) plus the 1K classes."""
    counts = {w: int(w[1:]) % 7 for w in S.unseen_candidates()[drop:]}
    counts.update({w: 1300 for w in imagenet_classes("1k")})
    path.write_text("wnid,count\n" + "".join(f"{w},{c}\n" for w, c in counts.items()) + extra)
    return counts


def test_m_and_l_splits_from_a_table_with_ties(tmp_path: Path) -> None:
    counts = synthetic_counts(tmp_path / "counts.csv")
    assert run_cli(["splits", "build", "--root", str(tmp_path / "out"), "--counts", str(tmp_path / "counts.csv"),
                    "-s", "M500", "-s", "M5K", "-s", "L1K"]) == 0
    cand = S.unseen_candidates()
    by = {c: sorted(w for w in cand if counts[w] == c) for c in range(7)}
    root = tmp_path / "out"
    assert ST.load_split("M500", root) == by[6][:500]  # all tied at 6: smallest wnids win
    assert ST.load_split("L1K", root) == by[1][:1000]  # count 0 never enters a split
    m5k = ST.load_split("M5K", root)
    assert m5k == sorted(by[6] + by[5][: 5000 - len(by[6])])
    manifest = ST.load_manifest("M5K", root)
    assert manifest["parameters"]["tie_break"] == "wnid ascending"
    assert manifest["inputs"]["count_table"]["rows"] == 20842 + 1000
    # validate re-builds count splits only with their own table
    assert run_cli(["splits", "validate", "--root", str(root), "--counts", str(tmp_path / "counts.csv")]) == 0


def test_compare_numbers() -> None:
    c = compare_lists(["n1", "n2", "n3"], ["n2", "n3", "n4", "n5"])
    assert (c.built, c.reference, c.overlap) == (3, 4, 2)
    assert (c.precision, c.recall, c.jaccard) == (pytest.approx(2 / 3), 0.5, 0.4)
    assert c.only_built == ["n1"] and c.only_reference == ["n4", "n5"]


def test_compare_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    two_h = ST.load_split("2H", COMMITTED)
    ref = tmp_path / "published.txt"
    ref.write_text("# a published list\n" + "".join(f"{w} some lemma\n" for w in two_h[:1000]) + "n00000001\n")
    assert run_cli(["splits", "compare", "2H", str(ref), "--root", str(COMMITTED)]) == 0
    out = capsys.readouterr().out
    assert "1548" in out and "1001" in out and "0.6460" in out and "0.9990" in out  # 1000/1548, 1000/1001
    assert f"only in {ref}: 1: n00000001" in out


def test_show(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["splits", "show", "2H", "xian2018", "--root", str(COMMITTED), "--sample", "2"]) == 0
    out = capsys.readouterr().out
    assert "│ imagenet21k │ 2H  " in out and "│ 1548    │" in out
    assert "│ xian2018    │ xian2018/M500 │ 500     │ Xian et al. (2018) list M500" in out
    assert out.count("│ xian2018    │") == 9


@pytest.mark.parametrize(
    ("extra", "drop", "message"),
    [
        ("n99999999,5\n", 0, "1 wnid(s) that are not ImageNet-21K/1K classes: n99999999"),
        ("", 3, "misses 3 of the 20842 classes outside the 1K"),
        ("n01440764,x\n", 0, "count is not an integer"),
        ("n01440764,2.5\n", 0, "count is not an integer: '2.5'"),
        ("n00004475,-1\n", 0, "negative count -1 for n00004475"),
        ("n00004475,9\n", 0, "duplicate wnid n00004475"),
    ],
)
def test_bad_count_table_writes_nothing(
    wn_env: Path,
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str, drop: int, message: str
) -> None:
    synthetic_counts(tmp_path / "counts.csv", extra, drop)
    out = tmp_path / "out"
    assert run_cli(["splits", "build", "--root", str(out), "--counts", str(tmp_path / "counts.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert files_under(out) == []


@pytest.mark.parametrize(
    ("typed", "hint"),
    [("2h", "(did you mean 2H?)"), ("xian2018/m500", "(did you mean xian2018/M500?)"),
     ("xian/3H", "(did you mean xian2018/3H"), ("Xian2018/All", "(did you mean xian2018/All?)")],
)
def test_unknown_split_name(tmp_path: Path, capsys: pytest.CaptureFixture[str], typed: str, hint: str) -> None:
    assert run_cli(["splits", "build", "--root", str(tmp_path), "-s", "All", "-s", typed]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: unknown split '{typed}' {hint}") and err.count("\n") == 1
    assert files_under(tmp_path) == []
    with pytest.raises(DataError, match=r"known splits: 2H, 3H.* and xian2018/<2H\|3H\|M500"):
        ST.load_split("M2K", COMMITTED)


def test_no_wordnet_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ZSL_SCALE_WORDNET", str(tmp_path / "no-wordnet"))
    assert run_cli(["splits", "build", "--root", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "apt-get install wordnet-base wordnet-sense-index" in err
    assert files_under(tmp_path / "out") == []


def test_split_not_built(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="split 3H is not built"):
        ST.load_split("3H", tmp_path)


def test_count_split_without_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["splits", "build", "--root", str(tmp_path), "-s", "All", "-s", "M500"]) == 2
    assert "split M500 needs a per-class image count table" in capsys.readouterr().err
    assert files_under(tmp_path) == []  # All was computed but not written: all-or-nothing
