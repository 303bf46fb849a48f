"""Shard store: atomic shards + manifest, resume bookkeeping, settings guard, streaming reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from zsl_scale.core.errors import DataError
from zsl_scale.core.shards import (
    ShardStore,
    filter_shards,
    iter_batches,
    parquet_options,
    read_manifest,
    shard_files,
    shard_name,
    vector_array,
    vectors,
)


def _table(start: int, n: int, dtype=np.float16) -> pa.Table:
    x = np.arange(start * 3, (start + n) * 3, dtype=dtype).reshape(n, 3)
    return pa.table({"image_id": [f"n1/{i}" for i in range(start, start + n)], "wnid": ["n1"] * n,
                     "feature": vector_array(x)})


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_vectors_round_trip_keeps_dtype_and_handles_slices(dtype):
    x = np.random.default_rng(0).normal(size=(10, 4)).astype(dtype)
    arr = vector_array(x)
    assert arr.type == pa.list_(pa.from_numpy_dtype(dtype), 4)
    np.testing.assert_array_equal(vectors(arr), x)
    np.testing.assert_array_equal(vectors(arr.slice(3, 4)), x[3:7])
    np.testing.assert_array_equal(vectors(pa.chunked_array([arr.slice(0, 2), arr.slice(2)])), x)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_vector_columns_are_byte_stream_split_and_bitwise_unchanged(tmp_path: Path, dtype):
    import pyarrow.parquet as pq

    x = np.maximum(np.random.default_rng(1).normal(size=(50, 16)), 0).astype(dtype)  # ReLU-like features
    table = pa.table({"image_id": [f"i{k}" for k in range(50)], "wnid": ["n1", "n2"] * 25, "feature": vector_array(x)})
    opts = parquet_options(table.schema)
    assert opts["use_dictionary"] == ["image_id", "wnid"]
    assert opts["use_byte_stream_split"] == ["feature.list.element"]
    store = ShardStore(tmp_path / "s", "features", {"dim": 16}, 1).open()
    store.write_shard(0, table, {})
    meta = pq.ParquetFile(tmp_path / "s" / shard_name(0)).metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)}
    assert "BYTE_STREAM_SPLIT" in encodings["feature.list.element"]
    assert "RLE_DICTIONARY" in encodings["wnid"] and "RLE_DICTIONARY" not in encodings["feature.list.element"]
    back = vectors(pq.read_table(tmp_path / "s" / shard_name(0)).column("feature"))
    assert back.dtype == dtype and back.tobytes() == x.tobytes()


def test_store_resumes_verifies_hashes_and_guards_settings(tmp_path: Path):
    out = tmp_path / "s"
    store = ShardStore(out, "features", {"dim": 3}, 3).open()
    assert store.pending() == [0, 1, 2]
    store.write_shard(0, _table(0, 4), {})
    store.write_shard(2, _table(8, 2), {})
    again = ShardStore(out, "features", {"dim": 3}, 3).open()
    assert again.pending() == [1]
    (out / shard_name(2)).write_bytes(b"damaged")  # a damaged shard is recomputed
    assert again.pending() == [1, 2]
    with pytest.raises(DataError, match="different settings"):
        ShardStore(out, "features", {"dim": 4}, 3).open()
    with pytest.raises(DataError, match="2 shards missing"):
        again.finish({})
    again.write_shard(1, _table(4, 4), {})
    again.write_shard(2, _table(8, 2), {})
    m = again.finish({"rows": 10})
    assert m["complete"] and read_manifest(out, "features")["rows"] == 10
    batches = list(iter_batches(out, ["image_id"], batch_rows=3))
    assert max(b.num_rows for b in batches) == 3
    assert [i for b in batches for i in b.column(0).to_pylist()] == [f"n1/{i}" for i in range(10)]


def test_overwrite_drops_shards_beyond_the_new_plan(tmp_path: Path):
    out = tmp_path / "s"
    store = ShardStore(out, "latents", {"a": 1}, 3).open()
    for i in range(3):
        store.write_shard(i, _table(i, 1), {})
    ShardStore(out, "latents", {"a": 2}, 1).open(overwrite=True)
    assert sorted(p.name for p in out.glob("part-*")) == [shard_name(0), shard_name(1), shard_name(2)][:1]


def test_incomplete_or_foreign_folders_are_refused(tmp_path: Path):
    store = ShardStore(tmp_path, "features", {}, 2).open()
    store.write_shard(0, _table(0, 1), {})
    with pytest.raises(DataError, match="incomplete"):
        list(iter_batches(tmp_path))
    with pytest.raises(DataError, match="expected 'latents'"):
        read_manifest(tmp_path, "latents")


def test_filter_shards_keeps_the_rows_asked_for_in_a_complete_set(tmp_path: Path):
    """The train stage's filter: one output shard per source shard, rows in order, a complete manifest (so the
    trainer reads it through the same checked reader); nothing written when every row is kept."""
    import pyarrow.parquet as pq

    src = ShardStore(tmp_path / "src", "features", {}, 2).open()
    for i in range(2):
        src.write_shard(i, _table(4 * i, 4).set_column(1, "wnid", pa.array(["n1", "n2"] * 2)), {})
    src.finish({})
    files = shard_files(tmp_path / "src", "features")
    assert filter_shards(files, "wnid", {"n1", "n2"}, tmp_path / "all") is None and not (tmp_path / "all").exists()
    out = filter_shards(files, "wnid", {"n2"}, tmp_path / "kept")
    kept = shard_files(out, "features")
    assert [p.name for p in kept] == [shard_name(0), shard_name(1)]
    ids = [i for p in kept for i in pq.read_table(p).column("image_id").to_pylist()]
    assert ids == ["n1/1", "n1/3", "n1/5", "n1/7"]
    (out / shard_name(1)).unlink()
    with pytest.raises(DataError, match="missing or damaged"):
        shard_files(out, "features")
