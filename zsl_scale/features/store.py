"""Reading a feature set: its manifest, its batches, its feature matrix."""


from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from zsl_scale.core import iter_batches, read_manifest, vectors

KIND = "features"


def read_feature_manifest(directory: str | Path) -> dict[str, Any]:
    """The manifest of a feature folder (backbone, dim, dtype, class counts, shard hashes)."""
    return read_manifest(directory, KIND)


def iter_feature_batches(
    directory: str | Path,
    columns: tuple[str, ...] = ("image_id", "wnid", "feature"),
    batch_rows: int = 65536,
) -> Iterator[pa.RecordBatch]:
    """Stream ``pyarrow.RecordBatch``es of a complete feature folder in shard order (bounded memory)."""
    return iter_batches(directory, columns, batch_rows, kind=KIND)


def feature_matrix(batch: pa.RecordBatch | pa.Table, column: str = "feature") -> np.ndarray:
    """The ``[N, D]`` feature array of a batch (float16 or float32, as stored)."""
    return vectors(batch.column(column))
