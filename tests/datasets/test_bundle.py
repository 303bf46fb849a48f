"""Benchmark loaders on the real shared files, the bundle round trip, and each kind of bad input."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from scipy.io import savemat

from zsl_scale.core.errors import DataError
from zsl_scale.datasets.bundle import (
    PACKAGED,
    Benchmark,
    load_bundle,
    load_flo,
    load_xlsa17,
    resolve_benchmark,
    save_bundle,
)


def tiny_benchmark() -> Benchmark:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 5)
    rows = np.arange(20)
    return Benchmark(
        name="tiny", features=rng.random((20, 6)).astype(np.float32), labels=labels,
        class_names=[f"c{i}" for i in range(4)], class_embeddings=rng.random((4, 3)).astype(np.float32),
        splits={"train": rows[labels < 2], "val": rows[labels == 2], "trainval": rows[labels < 3][::2],
                "test_seen": rows[labels < 3][1::2], "test_unseen": rows[labels == 3]},
        image_ids=[f"img{i}" for i in range(20)],
    )


def test_flo_from_shared_files(flo_dir) -> None:
    bench = load_flo(flo_dir)
    assert bench.features.shape == (8189, 1280)
    assert bench.class_embeddings.shape == (102, 1024)
    sizes = {k: len(v) for k, v in bench.splits.items()}
    assert sizes == {"train": 5878, "val": 1156, "trainval": 5631, "test_seen": 1403, "test_unseen": 1155}
    seen, unseen = bench.classes_of("trainval"), bench.classes_of("test_unseen")
    assert len(seen) == 82 and len(unseen) == 20 and not np.intersect1d(seen, unseen).size
    assert np.isin(bench.classes_of("test_seen"), seen).all()
    assert len(bench.classes_of("train")) == 62 and len(bench.classes_of("val")) == 20
    assert not np.intersect1d(bench.classes_of("train"), bench.classes_of("val")).size
    # xlsa17's test_unseen holds classes 1-20 (README); xlsa17 rows are 1-based in the file.
    assert unseen.tolist() == list(range(20))
    np.testing.assert_allclose(np.linalg.norm(bench.class_embeddings, axis=1), 1.0, atol=1e-4)


def test_packaged_bundle_matches_shared_files(flo_dir) -> None:
    shared, bundled = load_flo(flo_dir), load_bundle(PACKAGED["flo"])
    assert bundled.features.dtype == np.float16
    np.testing.assert_allclose(bundled.features.astype(np.float32), shared.features, rtol=1e-3, atol=2e-3)
    np.testing.assert_array_equal(bundled.labels, shared.labels)
    np.testing.assert_array_equal(bundled.class_embeddings, shared.class_embeddings)
    for split in shared.splits:
        np.testing.assert_array_equal(bundled.splits[split], shared.splits[split])
    assert bundled.image_ids[:2] == ["jpg/image_06765.jpg", "jpg/image_06755.jpg"]


def test_bundle_round_trip_float32(tmp_path) -> None:
    bench = tiny_benchmark()
    save_bundle(bench, tmp_path / "b", feature_dtype="float32")
    back = load_bundle(tmp_path / "b")
    np.testing.assert_array_equal(back.features, bench.features)
    assert back.class_names == bench.class_names
    assert resolve_benchmark(str(tmp_path / "b")).name == "tiny"


def _write_xlsa17(d, feats, labels, att, locs) -> None:
    d.mkdir(parents=True, exist_ok=True)
    savemat(d / "res101.mat", {"features": feats.T, "labels": (labels + 1)[:, None]})
    savemat(d / "att_splits.mat", {"att": att.T, **{f"{k}_loc": (v + 1)[:, None] for k, v in locs.items()}})


def test_xlsa17_loader_is_one_based(tmp_path) -> None:
    b = tiny_benchmark()
    _write_xlsa17(tmp_path / "TINY", b.features, b.labels, b.class_embeddings, b.splits)
    loaded = resolve_benchmark(str(tmp_path / "TINY"))
    np.testing.assert_array_equal(loaded.splits["test_unseen"], b.splits["test_unseen"])
    np.testing.assert_array_equal(loaded.labels, b.labels)
    np.testing.assert_allclose(loaded.features, b.features)


def test_xlsa17_names_need_the_release(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("ZSL_SCALE_XLSA17", raising=False)
    with pytest.raises(DataError, match="ZSL_SCALE_XLSA17"):
        resolve_benchmark("cub")
    b = tiny_benchmark()
    _write_xlsa17(tmp_path / "CUB", b.features, b.labels, b.class_embeddings, b.splits)
    monkeypatch.setenv("ZSL_SCALE_XLSA17", str(tmp_path))
    assert resolve_benchmark("cub").name == "cub"


def test_unknown_name_suggests(tmp_path) -> None:
    with pytest.raises(DataError, match="did you mean 'flo'"):
        resolve_benchmark("flox")


def test_nan_features_rejected() -> None:
    b = tiny_benchmark()
    b.features[3, 2] = np.nan
    with pytest.raises(DataError, match="1 feature rows contain NaN"):
        b.validate()


def test_wrong_embedding_rows_rejected() -> None:
    b = tiny_benchmark()
    b.class_embeddings = b.class_embeddings[:3]
    with pytest.raises(DataError, match="has 3 rows but the benchmark has 4 classes"):
        b.validate()


def test_unseen_overlapping_training_rejected() -> None:
    b = tiny_benchmark()
    b.splits["test_unseen"] = np.concatenate([b.splits["test_unseen"], [0]])
    with pytest.raises(DataError, match="unseen test classes also appear in the training split"):
        b.validate()


def test_missing_files_rejected(tmp_path) -> None:
    with pytest.raises(DataError, match="file not found"):
        load_xlsa17(tmp_path / "res101.mat", tmp_path / "att_splits.mat")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="neither a benchmark bundle nor an xlsa17 folder"):
        resolve_benchmark(str(tmp_path / "empty"))
    shutil.copytree(PACKAGED["flo"], tmp_path / "flo")
    (tmp_path / "flo" / "splits.parquet").unlink()
    with pytest.raises(DataError, match=r"missing splits\.parquet"):
        load_bundle(tmp_path / "flo")
