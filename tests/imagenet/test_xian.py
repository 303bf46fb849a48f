"""Xian et al.'s nine lists: committed byte-identical to the shared files, pinned by sha256, never altered."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli
from zsl_scale.core import sha256_file
from zsl_scale.core.errors import DataError
from zsl_scale.imagenet import stored as ST
from zsl_scale.imagenet.xian import XIAN2018_SHA256, XIAN2018_SPLITS, read_xian_list

COMMITTED = Path(__file__).resolve().parents[2] / "splits"


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_xian_lists_are_the_shared_files(shared_data: Path) -> None:
    src = shared_data / "imagenet" / "xian2018"
    sizes = {}
    for name in XIAN2018_SPLITS:
        committed = COMMITTED / "xian2018" / name / f"{name}.txt"
        assert committed.read_bytes() == (src / f"{name}.txt").read_bytes(), name
        manifest = ST.load_manifest(f"xian2018/{name}", COMMITTED)
        assert manifest["inputs"]["source"]["sha256"] == XIAN2018_SHA256[name] == sha256_file(committed)
        sizes[name] = manifest["num_classes"]
    assert sizes == {"2H": 1509, "3H": 7678, "M500": 500, "M1K": 1000, "M5K": 5000, "L500": 500, "L1K": 1000,
                     "L5K": 5000, "All": 20345}
    xall = set(ST.load_split("xian2018/All", COMMITTED))
    assert xall < set(ST.load_split("All", COMMITTED))
    assert all(set(ST.load_split(f"xian2018/{n}", COMMITTED)) <= xall for n in XIAN2018_SPLITS)


def test_altered_xian_source_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "M500.txt").write_text((COMMITTED / "xian2018" / "M500" / "M500.txt").read_text()[10:])
    out = tmp_path / "out"
    assert run_cli(["splits", "build", "--root", str(out), "-s", "xian2018/M500", "--xian-source", str(src)]) == 2
    assert "is not Xian et al.'s M500 list (sha256" in capsys.readouterr().err
    assert files_under(out) == []


def test_missing_source_names_the_folders(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"Xian et al\. list L1K\.txt not found in .*pass --xian-source"):
        read_xian_list("L1K", tmp_path)
    wnids, info = read_xian_list("L500", COMMITTED / "xian2018")
    assert len(wnids) == info["rows"] == 500 and info["file"] == "xian2018/L500.txt"
