"""The ``methods`` job stage: the baselines on a job's ImageNet-style data, through the score stage's scorer.

A tiny synthetic job folder with a planted structure: every image feature is a fixed linear map of its
class embedding plus noise, so a method that learns the map from the 12 training classes recognises the
4 held-out and 4 split classes from their embeddings alone. Fake splits / features / embeddings / score
stages hand the files over; the real methods and leaderboard stages run on them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch

from zsl_scale.core import (
    ConfigError,
    ShardStore,
    atomic_write_json,
    atomic_write_parquet,
    atomic_write_text,
    vector_array,
)
from zsl_scale.jobs import JobSpec, register_stage, run_job
from zsl_scale.jobs import registry as jobs
from zsl_scale.results import Metrics, ResultRecord, read_result, write_result

SEEN = [f"n0000{i:04d}" for i in range(16)]
HELD = SEEN[3::4]  # 4 of the 16 seen classes held out of training
SPLIT = [f"n1000{i:04d}" for i in range(4)]
PER_CLASS = 8
FIXED = {"eszsl": {"gamma": 1.0, "lam": 10.0}, "devise": {"lr": 0.1, "epochs": 10},
         "sje": {"lr": 0.1, "epochs": 10}, "ale": {"lr": 0.1, "epochs": 10}, "conse": {"T": 3, "epochs": 30}}
DISPLAY = {"eszsl": "ESZSL", "devise": "DeViSE", "sje": "SJE", "ale": "ALE", "conse": "ConSE"}


def _planted(seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(class embeddings of SEEN + SPLIT, image features, image wnids): features = emb · P + 3 + noise."""
    rng = np.random.default_rng(seed)
    wnids = SEEN + SPLIT
    emb = rng.normal(size=(len(wnids), 6)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    labels = np.repeat(np.arange(len(wnids)), PER_CLASS)
    feats = emb[labels] @ rng.normal(size=(6, 16)) + 3 + 0.25 * rng.normal(size=(len(labels), 16))
    return emb, feats.astype(np.float16), [wnids[i] for i in labels]


@pytest.fixture()
def fake_upstream(monkeypatch) -> None:
    """Splits, features, embeddings and a CADA-VAE score stage that write the planted job's files."""
    monkeypatch.setattr(jobs, "_REGISTRY", {})
    emb, feats, image_wnids = _planted()

    @register_stage("splits")
    def _splits(ctx):
        doc = {"seen": SEEN, "train": [w for w in SEEN if w not in HELD], "heldout": HELD, "splits": {"2H": SPLIT}}
        atomic_write_json(ctx.out_dir / "classes.json", doc)
        return [ctx.out_dir / "classes.json"]

    @register_stage("features")
    def _features(ctx):
        shards = ctx.out_dir / "shards"
        half = len(image_wnids) // 2
        store = ShardStore(shards, "features", {"dim": feats.shape[1], "dtype": str(feats.dtype)}, 2).open()
        for i, sl in enumerate((slice(0, half), slice(half, None))):  # two shards, as a real features stage
            store.write_shard(i, pa.table({
                "image_id": [f"img{j}" for j in range(len(image_wnids))][sl], "wnid": image_wnids[sl],
                "feature": vector_array(feats[sl])}), {"classes": {}, "skipped": []})
        store.finish({})  # a manifest the one shard reader accepts (schema, kind, complete, each shard's size)
        return [shards / "manifest.json"]

    @register_stage("embeddings")
    def _embeddings(ctx):
        atomic_write_parquet(ctx.out_dir / "embeddings.parquet",
                             pa.table({"wnid": SEEN + SPLIT, "embedding": vector_array(emb)}))
        groups = "".join(f"{w}\t{'animal' if i % 2 else 'plant'}\n" for i, w in enumerate(SEEN + SPLIT))
        atomic_write_text(ctx.out_dir / "groups.tsv", groups)
        return [ctx.out_dir / "embeddings.parquet"]

    @register_stage("score")
    def _score(ctx):  # a CADA-VAE result to stand beside the baselines on the leaderboard
        rec = ResultRecord(dataset="imagenet-toy", split="2H", method="CADA-VAE", seed=0, selection="fixed",
                           selection_source="classifier epochs (8) set in the config",
                           metrics=Metrics(S=50.0, U=10.0, H=16.7), config={})
        return [write_result(rec, ctx.out_dir / "results")]


def _job(methods: dict | None = None, **cfg) -> JobSpec:
    config = {"dataset": "imagenet-toy", "device": "cpu", "top_k": [1, 5], "batch_rows": 50,
              "methods": FIXED if methods is None else methods, **cfg}
    return JobSpec.model_validate({"name": "toy", "workdir": "w", "stages": [
        {"name": "splits"}, {"name": "features"}, {"name": "embeddings"}, {"name": "score"},
        {"name": "methods", "config": config}, {"name": "leaderboard"}]})


def test_every_method_scored_beats_chance_and_is_on_the_leaderboard(fake_upstream, tmp_path: Path) -> None:
    out = run_job(_job(), tmp_path, log=lambda s: None)
    assert [p.action for p in out.plans] == ["run"] * 6
    res = tmp_path / "w/methods/results"
    space = len(SEEN) + len(SPLIT)  # the GZSL search space 1K + 2H, here 16 + 4
    chance, chance5 = 100.0 / space, 500.0 / space
    numbers = {}
    for name, display in DISPLAY.items():
        rec = read_result(res / f"imagenet-toy__2H__{display}__gzsl__seed0.json")
        m = rec.metrics
        assert rec.selection == "fixed" and "fixed in the job config" in rec.selection_source
        assert rec.extra["hyper"] == FIXED[name] and rec.extra["train_images"] == 12 * PER_CLASS
        assert rec.extra["images"] == space * PER_CLASS and rec.extra["search_space"] == space
        assert "features:features" in rec.manifests and rec.config["stages"]["methods"]["kind"] == "methods"
        assert len(m.per_class) == space and set(m.per_group) == {"animal", "plant"}
        seen, _, top5 = numbers[name] = (m.S, m.U, m.top_k["top5"])
        # the planted map is learnt: seen images far above chance, the 8 unseen classes' top-5 too
        assert seen > 3 * chance and top5 > 1.5 * chance5, (name, numbers[name])
    # the compatibility and closed-form methods also recognise unseen classes top-1 (ConSE, a convex
    # combination of seen embeddings, predicts mostly seen classes in GZSL: its U is not asserted)
    assert all(numbers[n][1] > 2 * chance for n in ("eszsl", "devise", "sje", "ale")), numbers
    board = (tmp_path / "w/leaderboard/board/leaderboard.md").read_text()
    imagenet_view = board.split("## Methods × ImageNet splits (unseen top-1)")[1].split("## All rows")[0]
    for display in ["CADA-VAE", *DISPLAY.values()]:  # side by side in the methods × splits view
        assert f"| {display} | ours | fixed |" in imagenet_view


def test_scores_equal_the_method_ranking_its_own_logits(fake_upstream, tmp_path: Path) -> None:
    """The stage's numbers are the method's own arg-max over the search space (scaled features, same tie rule)."""
    from zsl_scale.scoring import mean_per_class_accuracy

    run_job(_job({"eszsl": FIXED["eszsl"]}), tmp_path, log=lambda s: None)
    rec = read_result(tmp_path / "w/methods/results/imagenet-toy__2H__ESZSL__gzsl__seed0.json")
    _, space, logits = _eszsl_logits()
    wnids = np.array(_planted()[2])
    y, pred = np.array([space.index(w) for w in wnids]), logits.argmax(axis=1)
    train = np.isin(wnids, [w for w in SEEN if w not in HELD])
    unseen = np.isin(wnids, HELD + SPLIT)
    seen_acc, unseen_acc = rec.metrics.S, rec.metrics.U
    assert seen_acc == pytest.approx(100 * mean_per_class_accuracy(y[train], pred[train]), abs=1e-3)
    assert unseen_acc == pytest.approx(100 * mean_per_class_accuracy(y[unseen], pred[unseen]), abs=1e-3)


def test_skip_resume_and_rerun(fake_upstream, tmp_path: Path) -> None:
    run_job(_job(), tmp_path, log=lambda s: None)
    res = tmp_path / "w/methods/results"
    stamps = {p.name: p.stat().st_mtime_ns for p in res.glob("*.json")}
    again = run_job(_job(), tmp_path, log=lambda s: None)
    assert [p.action for p in again.plans] == ["skip"] * 6
    # interrupted while SJE was scoring: no stage.json, SJE's results and marker gone; same config resumes
    stage = tmp_path / "w/methods"
    rec = json.loads((stage / "stage.json").read_text())
    (stage / "stage.json").unlink()
    atomic_write_json(stage / ".pending.json", {"hash": rec["hash"], "kind": "methods"})
    (res / "imagenet-toy__2H__SJE__gzsl__seed0.json").unlink()
    (stage / "done/sje.json").unlink()
    os.utime(res / "imagenet-toy__2H__ESZSL__gzsl__seed0.json", ns=(1, 1))  # would be rewritten if ESZSL re-ran
    resumed = run_job(_job(), tmp_path, log=lambda s: None)
    assert [p.action for p in resumed.plans][4:] == ["resume", "rerun"]
    assert (res / "imagenet-toy__2H__ESZSL__gzsl__seed0.json").stat().st_mtime_ns == 1  # reused, not re-trained
    assert (res / "imagenet-toy__2H__SJE__gzsl__seed0.json").is_file()
    assert all((res / n).stat().st_mtime_ns == t for n, t in stamps.items() if "ESZSL" not in n and "SJE" not in n)
    # a changed hyper-parameter re-runs the stage from scratch
    changed = run_job(_job({**FIXED, "sje": {"lr": 0.01, "epochs": 10}}), tmp_path, log=lambda s: None)
    assert [p.action for p in changed.plans][4:] == ["rerun", "rerun"]
    assert read_result(res / "imagenet-toy__2H__SJE__gzsl__seed0.json").extra["hyper"]["lr"] == 0.01


@pytest.mark.parametrize(("methods", "extra", "message"), [
    ({"eszsl": {"gamma": [1, 10], "lam": 1}}, {}, "'gamma' must be one value, not a grid"),
    ({"eszsl": {"gamma": 1}}, {}, "method eszsl needs 'lam'"),
    ({"devise": {"lr": 0.1, "epochs": 3, "margin": 1}}, {}, "unknown hyper-parameter 'margin'"),
    ({"cada": {}}, {}, "CADA-VAE runs through the train / latents / score stages"),
    ({"eszl": {}}, {}, "did you mean 'eszsl'"),
    ({}, {}, "needs 'methods'"),
    (FIXED, {"epochs": 3}, "unknown setting 'epochs'"),
    ({"eszsl": {"gamma": -1, "lam": 1}}, {}, "gamma must be > 0"),
])
def test_bad_configs_are_one_error(fake_upstream, tmp_path: Path, methods, extra, message) -> None:
    with pytest.raises(ConfigError, match=message):
        run_job(_job(methods, **extra), tmp_path, log=lambda s: None)
    assert not (tmp_path / "w/methods/stage.json").exists()


def _eszsl_logits() -> tuple[list[str], list[str], np.ndarray]:
    """(image ids, the 2H search space, ESZSL's test logits over it) — the stage's own fit, redone by hand."""
    from zsl_scale.cada import FeatureScaler
    from zsl_scale.methods import TrainData, get_method, scores

    emb, feats, wnids = _planted()
    space = sorted(SEEN + SPLIT)  # = gzsl_search_space(SEEN, SPLIT): SEEN sort before SPLIT
    y = np.array([space.index(w) for w in wnids])
    x = torch.as_tensor(feats.astype(np.float32))
    train = np.isin(np.array(wnids), [w for w in SEEN if w not in HELD])
    scaler = FeatureScaler.fit(x[train])
    order = [(SEEN + SPLIT).index(w) for w in space]
    data = TrainData(scaler(x[train]), torch.as_tensor(y[train]), torch.as_tensor(emb[order]))
    fitted = get_method("eszsl").make(data, 0).fit(FIXED["eszsl"])
    return [f"img{j}" for j in range(len(wnids))], space, scores(fitted, scaler(x), np.arange(len(space))).numpy()


def test_plugin_and_prediction_file_beside_the_builtins(fake_upstream, tmp_path: Path, capsys) -> None:
    """The example plugin runs in the methods stage (its origin on the board); ESZSL's outputs as a prediction
    file give exactly the stage's ESZSL numbers through ``zsl-scale evaluate imagenet --predictions``."""
    from tests.conftest import run_cli
    from tests.methods.test_plugins import require_example
    from tests.protocol.test_external import write_predictions

    version = require_example()
    run_job(_job({"eszsl": FIXED["eszsl"], "linproto": {"lam": 1.0}}), tmp_path, log=lambda s: None)
    res = tmp_path / "w/methods/results"
    lin = read_result(res / "imagenet-toy__2H__LinProto__gzsl__seed0.json")
    assert lin.provenance["method_plugin"]["distribution"] == "zsl-plugin-example"
    assert lin.metrics.S > 3 * 100 / 20 and lin.extra["hyper"] == {"lam": 1.0}  # learns: 3x chance on seen
    board = (tmp_path / "w/leaderboard/board/leaderboard.md").read_text()
    assert f"| LinProto [plugin zsl-plugin-example {version}] | ours | fixed |" in board
    eszsl = read_result(res / "imagenet-toy__2H__ESZSL__gzsl__seed0.json")
    ids, space, logits = _eszsl_logits()
    top5 = np.argsort(-logits, axis=1, kind="stable")[:, :5]
    ranked = [[space[j] for j in r] for r in top5]
    files = {"scores": write_predictions(tmp_path / "eszsl.parquet", ids, space, logits),
             "topk": write_predictions(tmp_path / "eszsl-top5.parquet", ids, topk=ranked)}
    for kind, path in files.items():
        out = tmp_path / f"ext-{kind}"
        assert run_cli(["evaluate", "imagenet", "--run", str(tmp_path / "w"), "--splits", "2H", "--predictions",
                        str(path), "--dataset", "imagenet-toy", "--out", str(out)]) == 0
        ext = read_result(out / f"imagenet-toy__2H__{path.stem}__gzsl__seed0.json")
        assert (ext.metrics.S, ext.metrics.U, ext.metrics.H) == (eszsl.metrics.S, eszsl.metrics.U, eszsl.metrics.H)
        assert ext.metrics.per_class == eszsl.metrics.per_class and ext.metrics.per_group == eszsl.metrics.per_group
        assert ext.selection == "external" and ext.extra["images"] == eszsl.extra["images"]
        assert ext.manifests["predictions"] == ext.extra["predictions"]["sha256"]
    assert "2H: S" in capsys.readouterr().out


def test_bad_imagenet_prediction_files_are_one_error_each(fake_upstream, tmp_path: Path, capsys) -> None:
    from tests.conftest import run_cli
    from tests.protocol.test_external import write_predictions

    run_job(_job({"eszsl": FIXED["eszsl"]}), tmp_path, log=lambda s: None)
    ids, space, logits = _eszsl_logits()
    nan = logits.copy()
    nan[3, 2] = np.nan
    plus_one = np.vstack([logits, logits[:1]])
    cases = {
        "unknown image": (write_predictions(tmp_path / "a.parquet", [*ids, "imgX"], space, plus_one), [],
                          "image 'imgX' is not a test image"),
        "missing image": (write_predictions(tmp_path / "b.parquet", ids[1:], space, logits[1:]), [],
                          "lacks 1 test image(s)"),
        "duplicate row": (write_predictions(tmp_path / "c.parquet", [*ids, ids[0]], space, plus_one), [],
                          "appears more than once"),
        "wrong class set": (write_predictions(tmp_path / "d.parquet", ids, space[:-1], logits[:, :-1]), [],
                            f"it lacks class '{space[-1]}'"),
        "NaN": (write_predictions(tmp_path / "e.parquet", ids, space, nan), [], "has a NaN or infinite score"),
        "topk class": (write_predictions(tmp_path / "f.parquet", ids, topk=[["n99999999"]] * len(ids)), [],
                       "ranks class 'n99999999'"),
        "no --run": (tmp_path / "a.parquet", ["--splits", "2H"], "pass --run"),
    }
    for case, (path, extra, message) in cases.items():
        args = extra or ["--run", str(tmp_path / "w"), "--splits", "2H"]
        assert run_cli(["evaluate", "imagenet", *args, "--predictions", str(path), "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], (case, err)
    assert not list((tmp_path / "o").glob("*.json"))
