"""Streaming feature shards: schema checks, class pairing, and worker-count-invariant global batches."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from zsl_scale.core.errors import DataError
from zsl_scale.core.io import atomic_write_parquet
from zsl_scale.datasets.synthetic import write_synthetic
from zsl_scale.distributed.streaming import (
    ClassTable,
    StreamPlan,
    iter_worker_batches,
    load_class_table,
    open_features,
    prefetch,
    step_noise,
)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_synthetic(tmp_path_factory.mktemp("syn"), rows=1000, dim=12, classes=5, emb_dim=4, row_group_rows=128)


def _plan(data, streams=4, batch=40):
    return StreamPlan(open_features(data[0]), batch, streams, block_rows=64, seed=3)


def test_open_features_reads_schema_and_counts(data):
    src = open_features(data[0])
    assert (src.num_rows, src.dim, src.dtype) == (1000, 12, "halffloat")
    assert sum(src.class_counts.values()) == 1000 and len(src.class_counts) == 5
    assert sum(b.rows for b in src.blocks(64)) == 1000


def test_global_batches_do_not_depend_on_worker_count(data):
    plan, classes = _plan(data), load_class_table(data[1])
    one = list(iter_worker_batches(plan, classes, epoch=0, rank=0, world=1))
    two = [list(iter_worker_batches(plan, classes, 0, r, 2)) for r in range(2)]
    assert len(one) == len(two[0]) == len(two[1]) == plan.steps(0) == 1000 // 40
    for s, full in enumerate(one):
        parts = [two[0][s], two[1][s]]
        pos = np.concatenate([p.positions for p in parts])
        feats = np.concatenate([p.features for p in parts])
        order = np.argsort(pos)
        np.testing.assert_array_equal(pos[order], np.arange(40))
        np.testing.assert_array_equal(feats[order], full.features[np.argsort(full.positions)])


def test_epoch_visits_rows_once_and_reshuffles(data):
    plan, classes = _plan(data), load_class_table(data[1])
    seen = [np.concatenate([b.features for b in iter_worker_batches(plan, classes, e, 0, 1)]) for e in (0, 1)]
    assert len(np.unique(seen[0], axis=0)) == len(seen[0]) == 1000  # each row once (1000 = 25 × 40)
    assert not np.array_equal(seen[0], seen[1])
    np.testing.assert_array_equal(np.sort(seen[0], axis=0), np.sort(seen[1], axis=0))


def test_features_are_paired_with_their_class_embedding(data):
    plan, classes = _plan(data), load_class_table(data[1])
    batch = next(iter_worker_batches(plan, classes, 0, 0, 1))
    table = pa.concat_tables([pq.read_table(p) for p in plan.source.files])
    by_feature = {bytes(np.asarray(f, dtype=np.float16)): w for f, w in
                  zip(table.column("feature").to_pylist(), table.column("wnid").to_pylist(), strict=True)}
    for x, y in zip(batch.features, batch.labels, strict=True):
        assert classes.wnids[y] == by_feature[bytes(x)]


def test_uneven_worker_split_is_refused(data):
    with pytest.raises(DataError, match="cannot split 4 data streams"):
        next(iter_worker_batches(_plan(data), load_class_table(data[1]), 0, 0, 3))


def test_mismatched_dimensions_are_refused(tmp_path, data):
    feats, _ = write_synthetic(tmp_path, rows=50, dim=12, classes=2, emb_dim=4)
    other, _ = write_synthetic(tmp_path / "b", rows=50, dim=9, classes=2, emb_dim=4)
    (feats / "manifest.json").unlink()
    (feats / "part-00009.parquet").write_bytes((other / "part-00000.parquet").read_bytes())
    msg = "mismatched dimensions: part-00009.parquet has D=9, part-00000.parquet has D=12"
    with pytest.raises(DataError, match=re.escape(msg)):
        open_features(feats)


def test_missing_embedding_and_bad_files(tmp_path, data):
    classes = load_class_table(data[1])
    partial = ClassTable(classes.wnids[1:], classes.vectors[1:])
    with pytest.raises(DataError, match=f"class {classes.wnids[0]} has no class embedding"):
        partial.require(list(open_features(data[0]).class_counts))
    with pytest.raises(DataError, match="feature folder not found"):
        open_features(tmp_path / "nope")
    bad = tmp_path / "bad.parquet"
    atomic_write_parquet(bad, pa.table({"wnid": ["a"], "x": [1]}))
    with pytest.raises(DataError, match="one vector column"):
        load_class_table(bad)


def test_step_noise_is_a_function_of_seed_epoch_step():
    a = step_noise(1, 2, 3, 2, 8)
    assert a.shape == (2, 8, 1)
    assert np.array_equal(a.numpy(), step_noise(1, 2, 3, 2, 8).numpy())
    assert not np.array_equal(a.numpy(), step_noise(1, 2, 4, 2, 8).numpy())


def test_prefetch_keeps_order_and_reraises():
    assert list(prefetch(iter(range(50)), depth=3)) == list(range(50))

    def broken():
        yield 1
        raise DataError("bad shard")

    with pytest.raises(DataError, match="bad shard"):
        list(prefetch(broken()))
