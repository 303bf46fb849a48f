"""Synthetic feature shards and class embeddings, in the real on-disk formats, for tests and benchmarks.

Each class has a random prototype; an image feature is a ReLU'd noisy copy of its class prototype and
the class embedding a fixed random projection of the prototype, so the two modalities share structure
a CADA-VAE can align (and a classifier can separate) — timing and equivalence numbers then come from
a model that is actually learning, not from noise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from zsl_scale.core import atomic_path, atomic_write_json, atomic_write_parquet, parquet_options


def _vectors(values: np.ndarray) -> pa.FixedSizeListArray:
    values = np.ascontiguousarray(values)
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])


def class_ids(num_classes: int) -> list[str]:
    return [f"n{9000000 + i:08d}" for i in range(num_classes)]


def write_synthetic(
    out_dir: str | Path,
    rows: int,
    dim: int = 64,
    classes: int = 10,
    emb_dim: int = 16,
    shards: int = 2,
    row_group_rows: int = 4096,
    dtype: str = "float16",
    seed: int = 0,
    extra_classes: int = 0,
) -> tuple[Path, Path]:
    """Write ``shards`` feature shards (+ manifest.json) and an embedding parquet; returns both paths.

    ``extra_classes`` adds embeddings of classes with no images (unseen classes for the classifier).
    """
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    total = classes + extra_classes
    protos = rng.normal(size=(total, dim)).astype(np.float32)
    proj = rng.normal(size=(dim, emb_dim)).astype(np.float32) / np.sqrt(dim)
    emb = protos @ proj
    wnids = class_ids(total)
    labels = rng.integers(0, classes, size=rows)
    feats_dir = out / "features"
    manifest: dict = {"schema_version": 1, "kind": "features", "dim": dim, "dtype": dtype, "shards": {},
                      "complete": True, "synthetic": True}
    bounds = np.linspace(0, rows, shards + 1).astype(int)
    for i in range(shards):
        name = f"part-{i:05d}.parquet"
        # One row group at a time: memory is bounded by ``row_group_rows``, not by the shard (the noise is
        # drawn in the same order either way, so the values do not depend on the slicing).
        with atomic_path(feats_dir / name, suffix=".parquet") as tmp:
            writer = None
            for start in range(bounds[i], bounds[i + 1], row_group_rows):
                stop = min(start + row_group_rows, bounds[i + 1])
                lab = labels[start:stop]
                noise = rng.normal(size=(len(lab), dim)).astype(np.float32)
                x = np.maximum(protos[lab] + 0.5 * noise, 0).astype(dtype)
                table = pa.table({
                    "image_id": pa.array([f"img{j:09d}" for j in range(start, stop)]),
                    "wnid": pa.array([wnids[k] for k in lab]),
                    "feature": _vectors(x),
                })
                if writer is None:
                    opts = {k: v for k, v in parquet_options(table.schema).items() if k != "row_group_size"}
                    writer = pq.ParquetWriter(tmp, table.schema, **opts)
                writer.write_table(table, row_group_size=row_group_rows)
            if writer is not None:
                writer.close()
        manifest["shards"][name] = {"index": i, "rows": int(bounds[i + 1] - bounds[i])}
    atomic_write_json(feats_dir / "manifest.json", manifest)
    emb_path = out / "embeddings.parquet"
    atomic_write_parquet(emb_path, pa.table({"wnid": pa.array(wnids), "embedding": _vectors(emb)}))
    return feats_dir, emb_path
