"""The protocol: phases never touch test rows, determinism, and a real training run on Flowers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zsl_scale.cada.scaling import FeatureScaler
from zsl_scale.core.config import load_config
from zsl_scale.core.errors import DataError
from zsl_scale.datasets.bundle import PACKAGED, Benchmark, load_bundle
from zsl_scale.protocol.evaluate import evaluate_setting, evaluate_settings, validate
from zsl_scale.protocol.phases import fold_classes, make_phase
from zsl_scale.scoring.metrics import harmonic_mean, mean_per_class_accuracy


def separable_benchmark(n_classes: int = 6, per_class: int = 12, seed: int = 0) -> Benchmark:
    """Classes whose features and embeddings share a random class code — learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    codes = rng.normal(size=(n_classes, 8))
    labels = np.repeat(np.arange(n_classes), per_class)
    feats = codes[labels] @ rng.normal(size=(8, 20)) + 0.1 * rng.normal(size=(len(labels), 20))
    emb = codes @ rng.normal(size=(8, 10))
    rows = np.arange(len(labels))
    seen = labels < n_classes - 2
    half = rows % 2 == 0
    return Benchmark(
        name="separable", features=feats.astype(np.float32), labels=labels,
        class_names=[f"c{i}" for i in range(n_classes)], class_embeddings=emb.astype(np.float32),
        splits={"train": rows[labels < n_classes - 3], "val": rows[labels == n_classes - 3],
                "trainval": rows[seen & half], "test_seen": rows[seen & ~half], "test_unseen": rows[~seen]},
        image_ids=[str(i) for i in rows],
    )


def test_phases_keep_test_rows_out_of_validation(flo_dir) -> None:
    bench = load_bundle(PACKAGED["flo"])
    cfg = load_config()
    val = make_phase(bench, "val", cfg, shots=0, seed=0)
    test_rows = np.concatenate([bench.splits["test_seen"], bench.splits["test_unseen"]])
    for rows in (val.train_rows, val.eval_seen_rows, val.eval_unseen_rows):
        assert not np.intersect1d(rows, test_rows).size
    assert not np.intersect1d(val.train_rows, val.eval_seen_rows).size
    assert len(val.seen_classes) == 62 and len(val.unseen_classes) == 20
    # ~20% of each seen class is held out as seen-validation.
    assert 0.18 < len(val.eval_seen_rows) / (len(val.train_rows) + len(val.eval_seen_rows)) < 0.22
    test = make_phase(bench, "test", cfg, shots=5, seed=0)
    assert len(test.shot_rows) == 5 * 20
    assert not np.intersect1d(test.shot_rows, test.eval_unseen_rows).size
    assert len(test.eval_unseen_rows) == 1155 - 100


def test_validation_folds_hold_out_disjoint_train_classes(flo_dir) -> None:
    bench = load_bundle(PACKAGED["flo"])
    cfg = load_config(overrides=["eval.val_folds=3"])
    test_rows = np.concatenate([bench.splits["test_seen"], bench.splits["test_unseen"]])
    test_unseen = bench.classes_of("test_unseen")
    held = [set(make_phase(bench, "val", cfg, 0, seed=0, fold=f).unseen_classes.tolist()) for f in range(3)]
    assert [len(h) for h in held] == [20, 20, 20]
    assert not (held[0] & held[1]) and not (held[0] & held[2]) and not (held[1] & held[2])
    for f in (1, 2):
        phase = make_phase(bench, "val", cfg, 0, seed=0, fold=f)
        assert set(phase.unseen_classes.tolist()) == set(fold_classes(bench, f, seed=0).tolist())
        assert len(phase.seen_classes) == 62 and not set(phase.seen_classes.tolist()) & held[f]
        assert not set(phase.seen_classes.tolist()) & set(test_unseen.tolist())
        for rows in (phase.train_rows, phase.eval_seen_rows, phase.eval_unseen_rows):
            assert not np.intersect1d(rows, test_rows).size
    # 62 train classes hold 3 disjoint folds of 20 beside the benchmark's own `val` fold, not 4.
    assert len(fold_classes(bench, 3, seed=0)) == 20
    with pytest.raises(DataError, match="at most 4 validation folds"):
        fold_classes(bench, 4, seed=0)


def test_selection_maximises_the_mean_curve_over_folds() -> None:
    bench = separable_benchmark(n_classes=9, per_class=10)
    bench.splits["val"] = bench.splits["train"][bench.labels[bench.splits["train"]] == 5]
    bench.splits["train"] = bench.splits["train"][bench.labels[bench.splits["train"]] < 5]
    cfg = load_config(overrides=["train.epochs=2", "train.batch_size=8", "classifier.max_epochs=4",
                                 "classifier.seen_samples=10", "classifier.unseen_samples=20", "eval.val_folds=3"])
    sel = validate(bench, cfg, [0], torch.device("cpu"), log=lambda m: None)[0]
    folds = sel["fold_curves"]
    assert len(folds) == 3 and all(len(c["H"]) == 4 for c in folds)
    mean_h = np.mean([c["H"] for c in folds], axis=0)
    np.testing.assert_allclose(sel["val_curves"]["H"], mean_h)
    assert sel["gzsl_epochs"] == int(np.argmax(mean_h)) + 1 and sel["val_H"] == pytest.approx(mean_h.max())


def test_minmax_scaler_uses_training_statistics_only() -> None:
    train = torch.tensor([[0.0, 10.0], [2.0, 10.0]])
    scaler = FeatureScaler.fit(train)
    torch.testing.assert_close(scaler(torch.tensor([[1.0, 10.0], [4.0, 12.0]])),
                               torch.tensor([[0.5, 0.0], [2.0, 2.0]]))  # constant dim: span 1, no clipping


def test_same_seed_same_h_on_cpu() -> None:
    bench = separable_benchmark()
    cfg = load_config(overrides=["train.epochs=3", "train.batch_size=8", "classifier.max_epochs=3",
                                 "classifier.seen_samples=20", "classifier.unseen_samples=40", "seed=5"])
    runs = [evaluate_setting(bench, cfg, 0, torch.device("cpu"), log=lambda m: None) for _ in range(2)]
    assert runs[0].metrics == runs[1].metrics
    assert runs[0].selection["gzsl_epochs"] == runs[1].selection["gzsl_epochs"]
    other = evaluate_setting(bench, cfg.model_copy(update={"seed": 6}), 0, torch.device("cpu"), log=lambda m: None)
    assert other.metrics["per_class"] != runs[0].metrics["per_class"]


def test_cached_vaes_give_the_same_numbers_and_are_keyed_by_their_inputs(tmp_path) -> None:
    bench = separable_benchmark()
    cfg = load_config(overrides=["train.epochs=3", "train.batch_size=8", "classifier.max_epochs=3",
                                 "classifier.seen_samples=20", "classifier.unseen_samples=40", "seed=5"])
    quiet, cpu = (lambda m: None), torch.device("cpu")
    fresh = evaluate_settings(bench, cfg, cpu, log=quiet, cache=tmp_path)[0]
    saved = sorted(p.name.split("-")[0] for p in tmp_path.glob("*.pt"))
    assert saved == ["test", "val"]  # the validation fold, then trainval
    lines: list[str] = []
    again = evaluate_settings(bench, cfg, cpu, log=lines.append, cache=tmp_path)[0]
    assert sum("VAE loaded" in line for line in lines) == 2
    timing = {"val_seconds"}  # wall time of the classifier runs: not a result
    assert again.metrics == fresh.metrics
    assert {k: v for k, v in again.selection.items() if k not in timing} == {
        k: v for k, v in fresh.selection.items() if k not in timing}
    # Another training setting is another key: it trains (and caches) its own VAEs.
    other = cfg.model_copy(update={"train": cfg.train.model_copy(update={"epochs": 2})})
    lines.clear()
    evaluate_settings(bench, other, cpu, log=lines.append, cache=tmp_path)
    assert not any("VAE loaded" in line for line in lines)
    assert len(list(tmp_path.glob("*.pt"))) == 4


def test_gfsl_searches_its_own_epoch_cap() -> None:
    bench = separable_benchmark(per_class=16)
    cfg = load_config(overrides=["train.epochs=2", "train.batch_size=8", "classifier.max_epochs=3",
                                 "classifier.max_epochs_gfsl=5", "classifier.seen_samples=10",
                                 "classifier.unseen_samples=20", "classifier.fewshot_samples=10"])
    chosen = validate(bench, cfg, [0, 1], torch.device("cpu"), log=lambda m: None)
    assert len(chosen[0]["val_curves"]["H"]) == 3 and len(chosen[1]["val_curves"]["H"]) == 5
    assert 1 <= chosen[1]["gzsl_epochs"] <= 5


def linear_map_baseline(bench: Benchmark) -> dict[str, float]:
    """An honest baseline: ridge map class embedding → mean feature, nearest prototype (cosine) over all classes."""
    tr = bench.splits["trainval"]
    scaler = FeatureScaler.fit(torch.as_tensor(bench.features[tr], dtype=torch.float32))
    x = scaler(torch.as_tensor(bench.features, dtype=torch.float32)).numpy().astype(np.float64)
    seen = bench.classes_of("trainval")
    means = np.stack([x[tr][bench.labels[tr] == c].mean(0) for c in seen])
    a = bench.class_embeddings[seen].astype(np.float64)
    w = np.linalg.solve(a.T @ a + 1.0 * np.eye(a.shape[1]), a.T @ means)
    protos = bench.class_embeddings.astype(np.float64) @ w
    space = np.union1d(seen, bench.classes_of("test_unseen"))
    p = protos[space] / np.linalg.norm(protos[space], axis=1, keepdims=True)

    def acc(rows: np.ndarray) -> float:
        q = x[rows] / np.linalg.norm(x[rows], axis=1, keepdims=True)
        return mean_per_class_accuracy(bench.labels[rows], space[(q @ p.T).argmax(1)])

    s, u = acc(bench.splits["test_seen"]), acc(bench.splits["test_unseen"])
    return {"S": 100 * s, "U": 100 * u, "H": 100 * harmonic_mean(s, u)}


@pytest.mark.slow
def test_short_real_training_on_flowers_beats_linear_baseline(flo_dir) -> None:
    bench = load_bundle(PACKAGED["flo"])
    # Classifier epochs fixed in advance (the authors' ~25), so the test exercises training, not selection.
    # 8 VAE epochs in batches of 100 at 3.3x the paper's lr (a third of the steps of 12 epochs in batches of 50;
    # the whole setting 32 s instead of 41 s). Measured on 2026-12-06: S 48.2, U 46.5, H 47.3 (lr 4.5e-4: H 46.1;
    # 12 epochs at 3e-4: S 46.5, U 45.9, H 46.2) vs the baseline's S 39.9, U 11.6, H 17.9.
    cfg = load_config(overrides=["classifier.epochs=25", "train.batch_size=100", "train.lr=0.0005"])
    cfg.train = cfg.train.shortened(8)
    torch.set_num_threads(2)
    ours = evaluate_setting(bench, cfg, 0, torch.device("cpu"), log=lambda m: None)
    base = linear_map_baseline(bench)
    assert ours.metrics["U"] > 10 and ours.metrics["S"] > 10
    assert ours.metrics["H"] > base["H"] + 15, (ours.metrics, base)
