"""Class universes and splits restricted to them (``NAME@U``): counts follow from the source files by set
intersection, computed here independently of the package (plain file reads and the sha256s timm ships)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "zsl_scale" / "data" / "imagenet"
# timm 1.0.31, timm/data/_info/: file and sha256 (checked here, so the test reads the real lists)
TIMM = {"in12k": ("imagenet12k_synsets.txt", "f6483e79f18a9b670d43d915ddba40bbcaf82cfc4e92a07bd44057b9d44935f3", 11821),
        "in21k-p-w21": ("imagenet21k_miil_w21_synsets.txt",
                        "f49dde3d69946b8635586432f34f35985f807d168286ce5fde746aac3a7d94c8", 10450)}
XIAN = ("2H", "3H", "M500", "M1K", "M5K", "L500", "L1K", "L5K", "All")


def _words(path: Path) -> list[str]:
    return path.read_text().split()


@pytest.mark.parametrize("universe", sorted(TIMM))
def test_restricted_xian_lists_are_set_intersections(universe: str, tmp_path: Path, capsys) -> None:
    fname, sha, rows = TIMM[universe]
    raw = (DATA / "universes" / fname).read_bytes()
    assert hashlib.sha256(raw).hexdigest() == sha
    uni = set(raw.decode().split())
    assert len(uni) == rows
    assert run_cli(["splits", "build", "-s", "xian2018", "--universe", universe, "--root", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    one_k = set(_words(DATA / "imagenet1k_wnids.txt"))
    kept_total = 0
    for name in XIAN:
        source = _words(REPO / "splits" / "xian2018" / name / f"{name}.txt")
        folder = tmp_path / f"xian2018@{universe}" / name
        written = _words(folder / f"{name}.txt")
        expected = sorted(set(source) & uni)
        assert written == expected, name
        m = json.loads((folder / "manifest.json").read_text())
        r = m["restriction"]
        assert (r["kept"], r["dropped"]) == (len(expected), len(source) - len(expected))
        assert r["dropped_wnids"] == sorted(set(source) - uni)
        assert r["universe"]["id"] == universe and r["universe"]["sha256"] == sha
        assert r["source_split"]["sha256"] == hashlib.sha256((REPO / "splits/xian2018" / name / f"{name}.txt")
                                                             .read_bytes()).hexdigest()
        assert r["seen"]["num_classes"] == len(one_k & uni) and r["seen"]["dropped_wnids"] == sorted(one_k - uni)
        assert f"xian2018/{name}@{universe}: {len(expected)} of {len(source)} classes kept" in printed
        kept_total += len(expected)
    # the least populated classes are exactly what the processed releases dropped
    assert _words(tmp_path / f"xian2018@{universe}" / "L500" / "L500.txt") == []
    assert kept_total > 0
    assert run_cli(["splits", "show", f"xian2018/2H@{universe}", "--root", str(tmp_path)]) == 0
    assert f"xian2018/2H@{universe}" in capsys.readouterr().out


def test_own_copy_universe_restricts_2h(graph_cache: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    """A `features count` table of a tree with 3 2H classes (one without images) and 2 1K classes."""
    monkeypatch.setenv("ZSL_SCALE_CACHE", str(graph_cache))
    two_h = _words(REPO / "splits" / "imagenet21k" / "2H" / "2H.txt")
    present = {two_h[0]: 2, two_h[5]: 1, "n01440764": 1, "n01443537": 3}
    tree = tmp_path / "tree"
    for wnid, n in present.items():
        (tree / wnid).mkdir(parents=True)
        for i in range(n):
            (tree / wnid / f"{wnid}_{i}.JPEG").write_bytes(b"not decoded by count")
    (tree / two_h[9]).mkdir()  # a class folder without images: not in the universe
    table = tmp_path / "counts.tsv"
    assert run_cli(["features", "count", str(tree), "--out", str(table)]) == 0
    root = tmp_path / "splits"
    assert run_cli(["splits", "build", "-s", "2H", "--universe", f"counts:{table}", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    (folder,) = root.glob("imagenet21k@counts-*")
    uid = folder.name.split("@")[1]
    assert f"2H@{uid}: 2 of {len(two_h)} classes kept" in out and "seen 2 of 1,000" in out
    assert _words(folder / "2H" / "2H.txt") == sorted([two_h[0], two_h[5]])
    # the id is the class set's: the same classes from another table give the same folder; `@counts:` resolves
    assert run_cli(["splits", "show", f"2H@counts:{table}", "--root", str(root)]) == 0
    assert uid in capsys.readouterr().out
    from zsl_scale.imagenet import split_seen

    assert split_seen(f"2H@{uid}", root) == ["n01440764", "n01443537"]


@pytest.mark.parametrize(("typed", "message"), [
    ("2H@in13k", "unknown universe 'in13k'"),
    ("2H@counts-0123456789ab", "is a user copy's id; pass its source"),
])
def test_bad_universe_is_one_line(typed: str, message: str, tmp_path: Path, capsys) -> None:
    assert run_cli(["splits", "build", "-s", typed, "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not any(tmp_path.iterdir())


def test_job_splits_stage_restricts_to_its_universe(tmp_path: Path, monkeypatch) -> None:
    """A job's `universe:` restricts every split and the seen classes (1K ∩ U) in classes.json."""
    from zsl_scale.jobs import JobSpec, run_job
    from zsl_scale.jobs import registry as jobs

    monkeypatch.setattr(jobs, "_REGISTRY", {})  # the real splits stage
    spec = JobSpec.model_validate({"name": "u", "workdir": "w", "stages": [
        {"name": "splits", "config": {"splits": ["xian2018/2H", "xian2018/M500"], "universe": "in12k"}}]})
    run_job(spec, tmp_path, log=lambda s: None)
    doc = json.loads((tmp_path / "w/splits/classes.json").read_text())
    uni = set((DATA / "universes" / TIMM["in12k"][0]).read_text().split())
    assert sorted(doc["splits"]) == ["xian2018/2H@in12k", "xian2018/M500@in12k"]
    assert doc["splits"]["xian2018/2H@in12k"] == sorted(set(_words(REPO / "splits/xian2018/2H/2H.txt")) & uni)
    assert doc["seen"] == sorted(set(_words(DATA / "imagenet1k_wnids.txt")) & uni) and len(doc["seen"]) == 993


def test_features_universe_counts_only_classes_with_usable_images(tmp_path: Path) -> None:
    """``features:<dir>`` reads the extraction's manifest (a job stage folder's ``shards/`` too)."""
    from zsl_scale.imagenet import resolve_universe

    manifest = {"kind": "features", "class_counts": {"n01440764": 3, "n01443537": 0, "n01484850": 1}}
    (tmp_path / "stage" / "shards").mkdir(parents=True)
    (tmp_path / "stage" / "shards" / "manifest.json").write_text(json.dumps(manifest))
    uni = resolve_universe(f"features:{tmp_path / 'stage'}")
    assert uni.wnids == {"n01440764", "n01484850"} and uni.id.startswith("features-")
    text = "n01440764\nn01484850\n"
    assert uni.id == "features-" + hashlib.sha256(text.encode()).hexdigest()[:12]
