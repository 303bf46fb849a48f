"""Streaming (image feature, class embedding) pairs from parquet feature shards, for data-parallel training.

Reads the feature-shard contract of docs/design.md §2 (``image_id``, ``wnid``, ``feature`` as
``fixed_size_list<float16|float32>[D]``, optional ``manifest.json``) with memory bounded independently
of the dataset size: only a few row-group blocks per stream are ever decoded at once.

Why *virtual streams*: the data of an epoch is cut into blocks (row-group slices), the blocks are
dealt round-robin, in a seeded per-epoch order, to ``streams`` virtual streams, and global batch
*s* takes ``b_v`` rows from every stream *v*. A worker reads only the streams it owns (``v % W ==
rank``), so each block is read by exactly one worker, yet the global batch does not depend on the
worker count W as long as W divides ``streams``. That is what makes 1 worker and N DDP workers see
the same global batches (and, with the per-row noise of :func:`step_noise`, compute the same
gradients up to float summation order).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from zsl_scale.core import DataError, shard_files, unlisted_shards

FEATURE_COLUMNS = ("image_id", "wnid", "feature")


@dataclass(frozen=True)
class Block:
    """A slice ``[start, stop)`` of row group ``row_group`` of shard file ``file``: the unit of reading."""

    file: int
    row_group: int
    start: int
    stop: int

    @property
    def rows(self) -> int:
        return self.stop - self.start


@dataclass
class FeatureSource:
    """Metadata of a feature-shard folder: files, feature width, row groups, per-class row counts."""

    directory: Path
    files: list[Path]
    dim: int
    dtype: str
    row_groups: list[list[int]]  # rows per row group, per file
    class_counts: dict[str, int] = field(default_factory=dict)

    @property
    def num_rows(self) -> int:
        return sum(sum(groups) for groups in self.row_groups)

    def blocks(self, block_rows: int) -> list[Block]:
        """Every row group cut into slices of at most ``block_rows`` rows, in file order."""
        out = []
        for f, groups in enumerate(self.row_groups):
            for g, rows in enumerate(groups):
                out.extend(Block(f, g, s, min(s + block_rows, rows)) for s in range(0, rows, block_rows))
        return out

    def fingerprint(self) -> dict[str, object]:
        """What identifies the data a checkpoint was trained on (names and sizes; no hashing of GBs)."""
        return {"files": [p.name for p in self.files], "rows": self.row_groups, "dim": self.dim}


def _shard_files(directory: Path, require_manifest: bool) -> list[Path]:
    """Shards listed by ``manifest.json`` (complete, each present: :func:`zsl_scale.core.shard_files`); a
    folder without one (a user's own feature set) is read as its ``*.parquet`` files unless
    ``require_manifest`` (a job stage's output always has one)."""
    if (directory / "manifest.json").is_file() or require_manifest:
        return shard_files(directory)
    return unlisted_shards(directory)


def open_features(directory: str | Path, scan_classes: bool = True, require_manifest: bool = False) -> FeatureSource:
    """Validate a feature folder's schema across all shards and (optionally) count rows per class.

    Raises :class:`DataError` for a missing folder, no shards, missing columns, a non-vector feature
    column or shards whose feature dimensions differ.
    """
    directory = Path(directory).resolve()  # absolute on the driver: a Ray worker's working folder is another
    if not directory.is_dir():
        raise DataError(f"feature folder not found: {directory}")
    files = _shard_files(directory, require_manifest)
    if not files:
        raise DataError(f"no parquet feature shards in {directory}")
    dim, dtype, first = None, None, None
    row_groups: list[list[int]] = []
    counts: dict[str, int] = {}
    for path in files:
        if not path.is_file():
            raise DataError(f"feature shard listed in the manifest is missing: {path}")
        try:
            pf = pq.ParquetFile(path)
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"cannot read feature shard {path}: {exc}") from exc
        schema = pf.schema_arrow
        missing = [c for c in FEATURE_COLUMNS if c not in schema.names]
        if missing:
            raise DataError(f"feature shard {path.name} lacks column(s) {missing}; expected {list(FEATURE_COLUMNS)}")
        ftype = schema.field("feature").type
        if not pa.types.is_fixed_size_list(ftype) or ftype.value_type not in (pa.float16(), pa.float32()):
            raise DataError(f"feature shard {path.name}: 'feature' must be a float16/float32 vector, not {ftype}")
        if dim is None:
            dim, dtype, first = ftype.list_size, str(ftype.value_type), path.name
        elif ftype.list_size != dim:
            raise DataError(
                f"feature shards have mismatched dimensions: {path.name} has D={ftype.list_size}, {first} has D={dim}"
            )
        row_groups.append([pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)])
        if scan_classes:
            vc = pc.value_counts(pf.read(columns=["wnid"]).column("wnid").combine_chunks())
            for item in vc.to_pylist():
                counts[item["values"]] = counts.get(item["values"], 0) + item["counts"]
    assert dim is not None and dtype is not None
    return FeatureSource(directory, files, dim, dtype, row_groups, dict(sorted(counts.items())))


@dataclass
class ClassTable:
    """Class embeddings, one row per wnid: what every image feature is paired with."""

    wnids: list[str]
    vectors: np.ndarray  # [C, E] float32

    def __post_init__(self) -> None:
        if len(self.wnids) != self.vectors.shape[0]:
            raise DataError(f"{len(self.wnids)} class ids but {self.vectors.shape[0]} embedding rows")
        if len(set(self.wnids)) != len(self.wnids):
            raise DataError("class embedding table lists a class twice")
        self._arrow = pa.array(self.wnids, type=pa.string())

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def subset(self, wnids: list[str]) -> ClassTable:
        """The rows of ``wnids``, in that order (:class:`DataError` naming a class without an embedding)."""
        self.require(wnids)
        row = {w: i for i, w in enumerate(self.wnids)}
        return ClassTable(list(wnids), self.vectors[[row[w] for w in wnids]])

    def indices(self, wnids: pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Row index of each wnid; :class:`DataError` naming a class that has no embedding."""
        idx = pc.index_in(wnids, value_set=self._arrow)
        if idx.null_count:
            bad = pc.filter(wnids, pc.is_null(idx))[0].as_py()
            raise DataError(f"class {bad} has no class embedding")
        return idx.to_numpy(zero_copy_only=False).astype(np.int64)

    def require(self, wnids: list[str]) -> None:
        """Check up front (before any worker starts) that every class in the features has an embedding."""
        known = set(self.wnids)
        missing = [w for w in wnids if w not in known]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise DataError(f"class {missing[0]}{more} has no class embedding")

    def fingerprint(self) -> str:
        from zsl_scale.core import sha256_bytes

        return sha256_bytes("\n".join(self.wnids).encode() + np.ascontiguousarray(self.vectors, np.float32).tobytes())


def load_class_table(path: str | Path) -> ClassTable:
    """Class embeddings from parquet: a ``wnid`` column and one ``fixed_size_list``/list vector column."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"class embedding file not found: {path}")
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"cannot read class embeddings {path}: {exc}") from exc
    vec_cols = [f.name for f in table.schema if pa.types.is_fixed_size_list(f.type) or pa.types.is_list(f.type)]
    if "wnid" not in table.column_names or not vec_cols:
        raise DataError(f"{path} must have a 'wnid' column and one vector column (e.g. 'embedding')")
    col = "embedding" if "embedding" in vec_cols else vec_cols[0]
    values = table.column(col).combine_chunks()
    vectors = np.stack(values.to_numpy(zero_copy_only=False)).astype(np.float32) if not pa.types.is_fixed_size_list(
        values.type) else values.flatten().to_numpy(zero_copy_only=False).reshape(len(values), -1).astype(np.float32)
    return ClassTable([str(w) for w in table.column("wnid").to_pylist()], vectors)


@dataclass(frozen=True)
class StreamPlan:
    """How an epoch's rows are cut into global batches: see the module docstring."""

    source: FeatureSource
    batch_size: int
    streams: int
    block_rows: int
    seed: int
    group_blocks: int = 2  # blocks shuffled together per stream (the shuffle buffer, in blocks)

    def rows_per_stream(self) -> list[int]:
        """``b_v``: rows stream v contributes to every global batch (they sum to ``batch_size``)."""
        base, extra = divmod(self.batch_size, self.streams)
        return [base + (v < extra) for v in range(self.streams)]

    def epoch_blocks(self, epoch: int) -> list[list[Block]]:
        """The blocks of each stream in ``epoch``: a seeded permutation of all blocks, cut into
        ``streams`` runs of equal row counts (a block on a boundary is split), so no stream runs dry
        early and an epoch drops less than one global batch."""
        blocks = self.source.blocks(self.block_rows)
        order = np.random.default_rng([self.seed, epoch, 0x5EED]).permutation(len(blocks))
        total = sum(b.rows for b in blocks)
        bounds = [total * v // self.streams for v in range(self.streams + 1)]
        out: list[list[Block]] = [[] for _ in range(self.streams)]
        pos = 0
        for i in order:
            b = blocks[i]
            for v in range(self.streams):
                lo, hi = max(bounds[v], pos), min(bounds[v + 1], pos + b.rows)
                if lo < hi:
                    out[v].append(Block(b.file, b.row_group, b.start + lo - pos, b.start + hi - pos))
            pos += b.rows
        return out

    def steps(self, epoch: int) -> int:
        """Global steps in ``epoch``: as many as the scarcest stream allows (a partial last batch is dropped)."""
        per = self.rows_per_stream()
        return min(sum(b.rows for b in bl) // per[v] for v, bl in enumerate(self.epoch_blocks(epoch)))


def _read_block(plan: StreamPlan, block: Block, cache: dict, classes: ClassTable) -> tuple[np.ndarray, np.ndarray]:
    """Features (stored dtype) and class indices of one block; keeps the last decoded row group."""
    key = (block.file, block.row_group)
    if key not in cache:
        cache.clear()
        pf = pq.ParquetFile(plan.source.files[block.file])
        table = pf.read_row_group(block.row_group, columns=["wnid", "feature"])
        feats = table.column("feature").combine_chunks()
        cache[key] = (
            feats.flatten().to_numpy(zero_copy_only=False).reshape(len(feats), plan.source.dim),
            classes.indices(table.column("wnid")),
        )
    feats, labels = cache[key]
    return feats[block.start : block.stop], labels[block.start : block.stop]


def iter_stream(plan: StreamPlan, classes: ClassTable, epoch: int, v: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream v's chunks of ``b_v`` rows for every step of ``epoch`` (shuffled within groups of blocks)."""
    rows = plan.rows_per_stream()[v]
    blocks = plan.epoch_blocks(epoch)[v]
    steps = plan.steps(epoch)
    cache: dict = {}
    buf_x: list[np.ndarray] = []
    buf_y: list[np.ndarray] = []
    done = 0
    for g in range(0, len(blocks), plan.group_blocks):
        for block in blocks[g : g + plan.group_blocks]:
            x, y = _read_block(plan, block, cache, classes)
            buf_x.append(x)
            buf_y.append(y)
        x, y = np.concatenate(buf_x), np.concatenate(buf_y)
        perm = np.random.default_rng([plan.seed, epoch, v, g]).permutation(len(y))
        x, y = x[perm], y[perm]
        usable = len(y) - len(y) % rows
        for s in range(0, usable, rows):
            if done == steps:
                return
            yield x[s : s + rows], y[s : s + rows]
            done += 1
        buf_x, buf_y = [x[usable:]], [y[usable:]]


@dataclass
class PairBatch:
    """One worker's share of a global batch: features, class indices and their rows' global positions."""

    features: np.ndarray
    labels: np.ndarray
    positions: np.ndarray  # index of each row within the global batch (selects its noise)


def iter_worker_batches(
    plan: StreamPlan, classes: ClassTable, epoch: int, rank: int, world: int
) -> Iterator[PairBatch]:
    """Worker ``rank``'s part of every global batch of ``epoch``: streams ``v`` with ``v % world == rank``."""
    if plan.streams % world:
        raise DataError(f"{world} workers cannot split {plan.streams} data streams evenly; make streams a multiple")
    per = plan.rows_per_stream()
    offsets = np.concatenate([[0], np.cumsum(per)])
    mine = [v for v in range(plan.streams) if v % world == rank]
    iters = [iter_stream(plan, classes, epoch, v) for v in mine]
    for _ in range(plan.steps(epoch)):
        parts = [next(it) for it in iters]
        yield PairBatch(
            features=np.concatenate([p[0] for p in parts]),
            labels=np.concatenate([p[1] for p in parts]),
            positions=np.concatenate([np.arange(offsets[v], offsets[v + 1]) for v in mine]),
        )


def step_noise(seed: int, epoch: int, step: int, modalities: int, batch_size: int) -> torch.Tensor:
    """The reparametrisation noise of a whole global batch, ``[modalities, batch_size, 1]``.

    Drawn from ``(seed, epoch, step)`` alone, so every worker can take its rows' noise without
    communication, and a resumed run draws exactly what an uninterrupted one would have.
    """
    gen = torch.Generator().manual_seed(((seed * 1_000_003 + epoch) * 1_000_003 + step) % (2**63))
    return torch.randn((modalities, batch_size, 1), generator=gen)


def prefetch(items: Iterator[PairBatch], depth: int = 4) -> Iterator[PairBatch]:
    """Produce ``items`` in a background thread, at most ``depth`` ahead (parquet decoding releases
    the GIL, so reading the next blocks overlaps the training step). Order and contents are unchanged."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False  # the consumer has gone: end the thread instead of blocking forever

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(done)
        except BaseException as exc:  # re-raised in the consumer
            put(exc)

    threading.Thread(target=produce, daemon=True, name="zsl-prefetch").start()
    try:
        while (item := q.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
