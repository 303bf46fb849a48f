"""The score and leaderboard stages inside a job, on a hand-made classifier and latent shards."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from zsl_scale.core.errors import ConfigError, DataError
from zsl_scale.core.io import atomic_write_json, atomic_write_parquet
from zsl_scale.jobs import JobSpec, register_stage, run_job
from zsl_scale.jobs import registry as jobs
from zsl_scale.results.schema import read_result

# 2-d latents; classes on the unit circle so the predicted class is the nearest direction
CLASSES = {"s1": 0.0, "s2": 1.5, "h1": 3.0, "u1": 4.5}  # seen, seen, held-out seen, split class


def _unit(angle: float) -> list[float]:
    return [float(np.cos(angle)), float(np.sin(angle))]


@pytest.fixture()
def fake_upstream(monkeypatch):
    monkeypatch.setattr(jobs, "_REGISTRY", {})  # fakes for the stages before score; the real score/leaderboard

    @register_stage("splits")
    def _splits(ctx):
        doc = {"seen": ["h1", "s1", "s2"], "train": ["s1", "s2"], "heldout": ["h1"], "splits": {"2H": ["u1"]}}
        atomic_write_json(ctx.out_dir / "classes.json", doc)
        return [ctx.out_dir / "classes.json"]

    @register_stage("embeddings")
    def _emb(ctx):
        (ctx.out_dir / "groups.tsv").write_text("s1\tanimal\ns2\tanimal\nh1\tplant\nu1\tplant\n")
        return [ctx.out_dir / "groups.tsv"]

    @register_stage("latents")
    def _lat(ctx):
        wnids = list(CLASSES)
        weight = torch.tensor([_unit(a) for a in CLASSES.values()])
        torch.save({"weight": weight, "bias": torch.zeros(4), "wnids": wnids, "epochs": 3},
                   ctx.out_dir / "classifier.pt")
        # images: s1 ×2 (1 right), s2 ×1 (right), h1 ×2 (right, wrong→s2), u1 ×1 (right), x (not in space)
        rows = [("s1", 0.0), ("s1", 1.5), ("s2", 1.5), ("h1", 3.0), ("h1", 1.6), ("u1", 4.5), ("zz", 0.0)]
        lat = np.array([_unit(a) for _, a in rows], np.float32)
        table = pa.table({"image_id": [f"i{i}" for i in range(len(rows))], "wnid": [w for w, _ in rows],
                          "latent": pa.FixedSizeListArray.from_arrays(pa.array(lat.ravel()), 2)})
        atomic_write_parquet(ctx.out_dir / "test" / "00000.parquet", table)
        atomic_write_json(ctx.out_dir / "test" / "manifest.json", {"schema_version": 1, "kind": "latents",
                                                                    "complete": True, "shards": {"00000.parquet": {}}})
        return [ctx.out_dir / "classifier.pt"]


def job(**score_cfg) -> JobSpec:
    return JobSpec.model_validate({"name": "toy", "workdir": "w", "stages": [
        {"name": "splits"}, {"name": "embeddings"}, {"name": "latents"},
        {"name": "score", "config": {"dataset": "toy", "top_k": [1, 2], "device": "cpu", **score_cfg}},
        {"name": "leaderboard"}]})


def test_score_stage_writes_results(fake_upstream, tmp_path: Path) -> None:
    run_job(job(), tmp_path, log=lambda s: None)
    rec = read_result(tmp_path / "w/score/results/toy__2H__CADA-VAE__gzsl__seed0.json")
    m = rec.metrics
    suh = (m.S, m.U, m.H)
    assert suh == pytest.approx((75.0, 75.0, 75.0))  # S: s1 1/2, s2 1/1; U: h1 1/2, u1 1/1
    assert m.per_class == pytest.approx({"s1": 50.0, "s2": 100.0, "h1": 50.0, "u1": 100.0})
    assert m.per_group == pytest.approx({"animal": 75.0, "plant": 75.0})
    assert m.top_k["top2"] == pytest.approx(100.0)
    assert rec.extra["search_space"] == 4 and rec.extra["images"] == 6  # "zz" is outside the space
    assert set(rec.manifests) >= {"latents:test", "classifier"}
    assert rec.config["stages"]["score"]["config"]["dataset"] == "toy"
    board = tmp_path / "w/leaderboard/board"
    assert (board / "index.html").exists() and "75.0" in (board / "leaderboard.md").read_text()


def test_calibrated_stacking_is_labelled(fake_upstream, tmp_path: Path) -> None:
    run_job(job(calibrated_stacking=0.9), tmp_path, log=lambda s: None)
    rec = read_result(tmp_path / "w/score/results/toy__2H__CADA-VAE+CS__gzsl__seed0.json")
    assert rec.extra["calibrated_stacking_gamma"] == 0.9
    unseen = rec.metrics.U
    assert unseen == pytest.approx(100.0)  # h1's image at 1.6 rad now goes to h1, not seen s2


def test_score_stage_bad_input(fake_upstream, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="split '3H' was not built"):
        run_job(job(splits=["3H"]), tmp_path, log=lambda s: None)
    with pytest.raises(ConfigError, match="unknown setting 'topk'; did you mean 'top_k'"):
        run_job(job(topk=[1]), tmp_path, log=lambda s: None)


def test_split_class_without_weight(fake_upstream, tmp_path: Path, monkeypatch) -> None:
    @register_stage("splits")
    def _splits(ctx):
        doc = {"seen": ["s1", "s2"], "train": ["s1", "s2"], "heldout": [], "splits": {"2H": ["u1", "u9"]}}
        (ctx.out_dir / "classes.json").write_text(json.dumps(doc))
        return [ctx.out_dir / "classes.json"]

    with pytest.raises(DataError, match="class u9 of the search space of split 2H has no classifier weight"):
        run_job(job(), tmp_path, log=lambda s: None)
