"""What may be scored: splits with classes the test images miss (refused, then scored restricted to the copy's
universe), a seeded test subsample (same images whatever the shard layout), and a backbone pretrained on the
unseen classes (refused, or scored with --allow-pretraining-overlap and labelled)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import run_cli
from tests.jobs.test_imagenet_eval import ANGLES, GROUPS, IMAGES, _latents, _stage
from zsl_scale.core.io import atomic_write_json
from zsl_scale.results.schema import read_result
from zsl_scale.scoring.guards import choose_test_images

SEEN, HELD = ["n00000001", "n00000002", "n00000003"], ["n00000003"]
NO_IMAGE = "n01496331"  # a split class of which the user's copy has no image


def _job(root: Path, splits: dict[str, list[str]], features: dict | None = None) -> Path:
    """A finished job folder (only what scoring reads); ``features``: a features manifest the latents came from."""
    (root / "splits").mkdir(parents=True)
    atomic_write_json(root / "splits" / "classes.json", {"seen": SEEN, "train": ["n00000001", "n00000002"],
                                                         "heldout": HELD, "splits": splits})
    (root / "embeddings").mkdir()
    (root / "embeddings" / "groups.tsv").write_text(GROUPS)
    lat = _latents(root / "latents" / "test")
    if features is not None:
        atomic_write_json(root / "features" / "manifest.json", features)
        doc = json.loads((lat / "manifest.json").read_text())
        atomic_write_json(lat / "manifest.json", {**doc, "source_path": str(root / "features")})
    wnids = sorted({*ANGLES, *(w for ws in splits.values() for w in ws)})
    angles = {**ANGLES, NO_IMAGE: 5.5, "n01322898": 4.5, "n01323068": 5.5}
    _classifier_at(root / "latents" / "classifier.pt", wnids, angles)
    for kind in ("splits", "embeddings", "latents"):
        _stage(root / kind, kind)
    return root


def _classifier_at(path: Path, wnids: list[str], angles: dict[str, float]) -> None:
    import torch

    weight = torch.tensor([[float(np.cos(angles[w])), float(np.sin(angles[w]))] for w in wnids])
    torch.save({"weight": weight, "bias": torch.zeros(len(wnids)), "wnids": wnids, "epochs": 3}, path)


def _err(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]


def test_missing_test_classes_refused_then_scored_restricted(tmp_path: Path, capsys) -> None:
    job = _job(tmp_path / "job", {"2H": ["n01494475", NO_IMAGE]})
    base = ["imagenet", "evaluate", "--run", str(job), "--device", "cpu", "--top-k", "1,2"]
    assert run_cli([*base, "--out", str(tmp_path / "a")]) == 2
    err = _err(capsys)
    assert len(err) == 1 and "split 2H: 1 of its 2 classes have no test image (e.g. n01496331)" in err[0]
    assert "--universe" in err[0] and not (tmp_path / "a").exists()
    # the copy's own classes: a `features count` table of its tree (every class with an image)
    tree = tmp_path / "tree"
    for i, (wnid, _) in enumerate(IMAGES):
        (tree / wnid).mkdir(parents=True, exist_ok=True)
        (tree / wnid / f"{i}.JPEG").write_bytes(b"x")
    assert run_cli(["features", "count", str(tree), "--out", str(tmp_path / "counts.tsv")]) == 0
    assert run_cli([*base, "--universe", f"counts:{tmp_path / 'counts.tsv'}", "--out", str(tmp_path / "b")]) == 0
    (path,) = (tmp_path / "b").glob("*.json")
    rec = read_result(path)
    assert rec.split.startswith("2H@counts-") and pytest.approx((75.0, 75.0)) == (rec.metrics.S, rec.metrics.U)
    es = rec.extra["eval_set"]
    assert es["universe"] == rec.split.split("@")[1] and es["split_set"] == "imagenet21k"
    assert (es["seen_classes"], es["unseen_classes"]) == (3, 2)  # n1-n3 seen; held-out n3 + n01494475 unseen


def test_max_test_per_class_is_seeded_and_layout_free(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(0)
    ids = [f"img{i:04d}" for i in range(300)]
    wnids = [f"n0000000{i % 3 + 1}" for i in range(300)]
    lat = pa.FixedSizeListArray.from_arrays(pa.array(rng.normal(size=600).astype(np.float32)), 2)
    table = pa.table({"image_id": ids, "wnid": wnids, "latent": lat})
    pq.write_table(table, tmp_path / "one.parquet")  # one worker: one shard
    order = rng.permutation(300)  # two workers: two shards, rows in another order
    pq.write_table(table.take(order[:170]), tmp_path / "two-a.parquet")
    pq.write_table(table.take(order[170:]), tmp_path / "two-b.parquet")
    one = choose_test_images([tmp_path / "one.parquet"], 5, seed=0)
    two = choose_test_images([tmp_path / "two-b.parquet", tmp_path / "two-a.parquet"], 5, seed=0)
    assert one == two and len(one[0]) == 15  # 5 per class, same ids, same recorded hash
    other = choose_test_images([tmp_path / "one.parquet"], 5, seed=1)
    assert other[0] != one[0]
    # two runs of the command choose (and record) the same images; scored counts follow
    job = _job(tmp_path / "job", {"2H": ["n01494475"]})
    runs = []
    for out in ("r1", "r2"):
        assert run_cli(["imagenet", "evaluate", "--run", str(job), "--device", "cpu", "--max-test-per-class", "1",
                        "--out", str(tmp_path / out)]) == 0
        (path,) = (tmp_path / out).glob("*.json")
        runs.append(read_result(path))
    assert "labelled 'pretraining unknown'" in capsys.readouterr().err  # no backbone record: scored, warned
    assert runs[0].extra["eval_set"] == runs[1].extra["eval_set"]
    assert runs[0].extra["eval_set"]["pretraining"] == "pretraining unknown"
    assert runs[0].extra["eval_set"]["test_per_class"] == 1 and runs[0].extra["images"] == 4  # 1 per class in space


def test_backbone_trained_on_the_unseen_classes(tmp_path: Path, capsys) -> None:
    from zsl_scale.features.backbones import get_backbone

    spec = get_backbone("efficientnet_lite0")
    weights = spec.weights_path()
    assert spec.describe()["trained_on"] == "in1k"
    assert spec.describe(weights)["trained_on"] == "unknown"  # user weights: unknown unless stated
    declared = spec.describe(weights, "in21k")
    job = _job(tmp_path / "job", {"xian2018/2H": ["n01322898", "n01323068"]}, {"kind": "features",
                                                                               "backbone": declared})
    # the images of the two split classes: rename the fixture's unseen class images
    lat = job / "latents" / "test" / "part-00000.parquet"
    t = pq.read_table(lat)
    w = [{"n01494475": "n01322898", "n00000009": "n01323068"}.get(x, x) for x in t.column("wnid").to_pylist()]
    pq.write_table(t.set_column(1, "wnid", pa.array(w)), lat)
    base = ["imagenet", "evaluate", "--run", str(job), "--device", "cpu", "--dataset", "imagenet21k"]
    assert run_cli([*base, "--out", str(tmp_path / "a")]) == 2
    err = _err(capsys)
    assert len(err) == 1 and "trained on in21k classes, 2 of the 2 unseen classes among them (e.g. n01322898)" in err[0]
    assert "--allow-pretraining-overlap" in err[0] and not (tmp_path / "a").exists()
    assert run_cli([*base, "--allow-pretraining-overlap", "--out", str(tmp_path / "b")]) == 0
    (path,) = (tmp_path / "b").glob("*.json")
    assert read_result(path).extra["eval_set"]["pretraining"] == "pretraining overlap"
    from zsl_scale.report.leaderboard import build_leaderboard

    md = build_leaderboard([tmp_path / "b"], tmp_path / "board")["markdown"].read_text()
    assert "xian2018/2H [pretraining overlap]" in md
