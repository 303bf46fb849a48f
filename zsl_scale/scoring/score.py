"""The score stage: top-1/top-k of millions of query vectors over search spaces of up to ~22K classes.

Inputs are a *class table* (one row per class of the search space: a linear classifier's weights and
bias, or class prototypes) and a stream of query vectors (test latents from parquet shards). Outputs are
per-class hit/total accumulators, from which the per-class mean top-1/top-k of docs/design.md §1 follow.

Why this shape:
- The logit matrix never exists: :mod:`zsl_scale.scoring.kernels` works block by block.
- Class order is the tie-break order (lowest index wins), so a GZSL search space lists the 1K seen
  classes first and then the split's own classes, each sorted by wnid: a tie between a seen and an
  unseen class goes to the seen class, the conservative choice for unseen accuracy.
- Calibrated stacking (Chao et al. 2016: subtract γ from seen-class scores) is an optional extra and
  is recorded in results as ``calibrated_stacking_gamma``; the paper's numbers do not use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from zsl_scale.core import ConfigError, DataError, resolve_device
from zsl_scale.scoring.kernels import BlockResult, ChunkedKernel, FaissIndex
from zsl_scale.scoring.metrics import harmonic_mean, mean_per_class


@dataclass(frozen=True)
class ClassTable:
    """Scoring parameters of a search space: ``logits = q · weightᵀ + bias``; row order = tie order."""

    class_ids: tuple[str, ...]
    weight: np.ndarray  # [C, D] float32
    bias: np.ndarray | None = None  # [C] float32

    def __post_init__(self) -> None:
        w = np.ascontiguousarray(self.weight, dtype=np.float32)
        if w.ndim != 2 or w.shape[0] != len(self.class_ids):
            raise DataError(f"class table has {len(self.class_ids)} class ids but weight shape {w.shape}")
        if len(set(self.class_ids)) != len(self.class_ids):
            raise DataError("class table lists a class id more than once")
        if not np.isfinite(w).all():
            raise DataError("class weights/prototypes contain NaN or infinity")
        object.__setattr__(self, "weight", w)
        if self.bias is not None:
            b = np.ascontiguousarray(self.bias, dtype=np.float32).reshape(-1)
            if b.shape[0] != w.shape[0] or not np.isfinite(b).all():
                raise DataError(f"class bias must be {w.shape[0]} finite values, got shape {b.shape}")
            object.__setattr__(self, "bias", b)

    @property
    def dim(self) -> int:
        return int(self.weight.shape[1])

    def index(self) -> dict[str, int]:
        """Class id → row."""
        return {c: i for i, c in enumerate(self.class_ids)}

    def subset(self, class_ids: Sequence[str], what: str = "search space") -> ClassTable:
        """The rows of ``class_ids`` in that order; a class without a row is a :class:`DataError`."""
        pos = self.index()
        missing = [c for c in class_ids if c not in pos]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise DataError(f"class {missing[0]} of the {what} has no classifier weight or embedding{more}")
        rows = np.fromiter((pos[c] for c in class_ids), dtype=np.int64, count=len(class_ids))
        bias = None if self.bias is None else self.bias[rows]
        return ClassTable(tuple(class_ids), self.weight[rows], bias)


def linear_table(class_ids: Sequence[str], weight: np.ndarray, bias: np.ndarray | None = None) -> ClassTable:
    """A linear softmax classifier (the paper's final classifier) as a class table."""
    return ClassTable(tuple(class_ids), weight, bias)


def prototype_table(class_ids: Sequence[str], prototypes: np.ndarray, metric: str = "dot") -> ClassTable:
    """Nearest-prototype scoring as a class table.

    ``dot`` ranks by q·p; ``cosine`` L2-normalises the prototypes (normalise queries with
    :func:`normalize` too); ``l2`` ranks by −½‖q−p‖², i.e. q·p − ½‖p‖² (the ‖q‖² term is the same
    for every class and cannot change a ranking), so all three share the one sgemm kernel.
    """
    p = np.asarray(prototypes, dtype=np.float32)
    if metric == "dot":
        return ClassTable(tuple(class_ids), p)
    if metric == "cosine":
        return ClassTable(tuple(class_ids), normalize(p))
    if metric == "l2":
        return ClassTable(tuple(class_ids), p, -0.5 * np.einsum("cd,cd->c", p, p))
    raise ConfigError(f"unknown prototype metric {metric!r}; use dot, cosine or l2")


def normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm == 0, 1, norm)


def gzsl_search_space(seen: Iterable[str], split_classes: Iterable[str]) -> list[str]:
    """The GZSL label space of a split: the seen classes (sorted), then the split's other classes (sorted)."""
    seen_sorted = sorted(set(seen))
    seen_set = set(seen_sorted)
    return seen_sorted + sorted(set(split_classes) - seen_set)


def calibrated_stacking(table: ClassTable, seen: Iterable[str], gamma: float) -> ClassTable:
    """EXTRA, not the paper's protocol: subtract ``gamma`` from the seen classes' logits."""
    seen_set = set(seen)
    bias = np.zeros(len(table.class_ids), np.float32) if table.bias is None else table.bias.copy()
    bias[[i for i, c in enumerate(table.class_ids) if c in seen_set]] -= np.float32(gamma)
    return replace(table, bias=bias)


class Scorer:
    """Scores query batches against a class table with the chunked kernel or faiss.

    Args:
        table: the search space.
        k: how many top classes to keep (top-1 needs only a running max).
        device: ``auto``/``cpu``/``cuda``; resolved at run time.
        backend: ``chunked`` (exact ranking rule, any device) or ``faiss`` (IndexFlatIP / knn_gpu).
        lse: also compute the streaming log-sum-exp (softmax probabilities / NLL).
        precision: CPU candidate search ``auto``/``bf16``/``fp32``; results are identical (exact re-score of
            every class that can still win), only speed differs — see :mod:`zsl_scale.scoring.exact`.
    """

    def __init__(self, table: ClassTable, k: int = 1, device: str = "auto", backend: str = "chunked",
                 lse: bool = False, class_chunk: int | None = None, query_chunk: int | None = None,
                 threads: int | None = None, precision: str = "auto") -> None:
        if k < 1:
            raise ConfigError(f"top-k needs k >= 1, got {k}")
        if backend not in ("chunked", "faiss"):
            raise ConfigError(f"unknown scoring backend {backend!r}; use chunked or faiss")
        if precision not in ("auto", "bf16", "fp32"):
            raise ConfigError(f"unknown scoring precision {precision!r}; use auto, bf16 or fp32")
        if backend == "faiss" and lse:
            raise ConfigError("the faiss backend returns top-k only; use backend=chunked for log-sum-exp")
        self.table, self.k, self.backend, self.lse = table, k, backend, lse
        self.device = resolve_device(device)
        # One backend per scorer, built once for the table: the faiss index, or the chunked kernel (whose
        # start-up check times bf16 against fp32, which the faiss path has no use for).
        self.index: FaissIndex | None = None
        self.kernel: ChunkedKernel | None = None
        if backend == "faiss":
            self.index = FaissIndex(table.weight, table.bias, use_gpu=self.device.type == "cuda")
        else:
            self.kernel = ChunkedKernel(table.weight, table.bias, self.device, class_chunk, query_chunk, threads,
                                        precision)

    def score(self, queries: np.ndarray, labels: np.ndarray | None = None) -> BlockResult:
        """Top-k (and LSE when asked) of ``queries`` ``[n, D]``; ``labels`` are row indices of the table."""
        q = check_queries(queries, self.table.dim)
        if self.kernel is not None:
            return self.kernel.run(q, self.k, labels, self.lse)
        return BlockResult(*self.index.search(q, self.k))

    def close(self) -> None:
        """Stop the chunked kernel's worker threads (``with Scorer(...) as scorer:`` does it on exit)."""
        if self.kernel is not None:
            self.kernel.close()

    def __enter__(self) -> Scorer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def check_queries(queries: np.ndarray, dim: int) -> np.ndarray:
    """Queries as contiguous float32 ``[n, dim]``; a dimension mismatch or NaN is a :class:`DataError`."""
    q = np.ascontiguousarray(queries, dtype=np.float32)
    if not q.flags.writeable:  # zero-copy arrow buffers are read-only; torch.from_numpy wants writable
        q = q.copy()
    if q.ndim != 2 or q.shape[1] != dim:
        raise DataError(f"query vectors have shape {tuple(q.shape)} but the classifier expects dimension {dim}")
    if not np.isfinite(q).all():
        raise DataError("query vectors contain NaN or infinity")
    return q


@dataclass
class Accumulator:
    """Per-class hit/total counts for several k, summed over a stream (see :mod:`zsl_scale.scoring.metrics`)."""

    n_classes: int
    ks: tuple[int, ...] = (1,)
    hits: dict[int, np.ndarray] = field(default_factory=dict)
    totals: np.ndarray = field(init=False)
    nll_sum: float = 0.0

    def __post_init__(self) -> None:
        self.totals = np.zeros(self.n_classes, np.float64)
        self.hits = {k: np.zeros(self.n_classes, np.float64) for k in self.ks}

    def update(self, labels: np.ndarray, result: BlockResult) -> None:
        """Add one scored batch; ``labels`` are table row indices."""
        labels = np.asarray(labels, np.int64)
        self.totals += np.bincount(labels, minlength=self.n_classes)
        for k in self.ks:
            hit = (result.indices[:, :k] == labels[:, None]).any(axis=1)
            self.hits[k] += np.bincount(labels, weights=hit, minlength=self.n_classes)
        if result.lse is not None and result.true_logit is not None:
            self.nll_sum += float(np.sum(result.lse.astype(np.float64) - result.true_logit))

    def per_class(self, k: int = 1) -> np.ndarray:
        """Top-k accuracy per class (NaN for classes without samples)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.hits[k] / self.totals

    def mean(self, k: int = 1, rows: Sequence[int] | np.ndarray | None = None) -> float:
        """Per-class mean top-k over ``rows`` (default: all classes with samples)."""
        sel = np.arange(self.n_classes) if rows is None else np.asarray(rows, np.int64)
        return mean_per_class(self.hits[k][sel], self.totals[sel])


def score_stream(scorer: Scorer, batches: Iterable[tuple[np.ndarray, np.ndarray]], ks: Sequence[int] = (1,),
                 ) -> Accumulator:
    """Score a stream of ``(queries, label_rows)`` batches into an :class:`Accumulator`."""
    if max(ks) > scorer.k:
        raise ConfigError(f"asked for top-{max(ks)} accuracy from a scorer that keeps top-{scorer.k}")
    acc = Accumulator(len(scorer.table.class_ids), tuple(ks))
    for queries, labels in batches:
        acc.update(labels, scorer.score(queries, labels))
    return acc


def iter_parquet_batches(paths: Sequence[str | Path], class_ids: Sequence[str], batch_rows: int = 65536,
                         feature_column: str = "feature", label_column: str = "wnid", skip_outside: bool = False,
                         keep_ids: frozenset[str] | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream ``(float32 [n, D] features, label rows)`` from parquet shards (docs/design.md §2 schema).

    Only ``batch_rows`` rows are in memory at a time; float16 features are widened here. A row whose
    label is not in ``class_ids`` (the search space) is a :class:`DataError`, or is dropped with
    ``skip_outside`` (a split scores only its own images out of a shared test set). ``keep_ids``: only
    the rows whose ``image_id`` is in it (a test subsample, :func:`zsl_scale.scoring.guards.choose_test_images`).
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    value_set = pa.array(list(class_ids), pa.string())
    keep = None if keep_ids is None else pa.array(sorted(keep_ids), pa.string())
    for path in paths:
        try:
            pfile = pq.ParquetFile(path)
        except (OSError, pa.ArrowInvalid) as exc:
            raise DataError(f"cannot read parquet shard {path}: {exc}") from exc
        names = pfile.schema_arrow.names
        for col in (feature_column, label_column):
            if col not in names:
                raise DataError(f"parquet shard {path} has no column {col!r} (columns: {', '.join(names)})")
        columns = [feature_column, label_column, *(["image_id"] if keep_ids is not None else [])]
        for batch in pfile.iter_batches(batch_size=batch_rows, columns=columns):
            if keep_ids is not None:
                batch = batch.filter(pc.is_in(batch.column(2), value_set=keep))
            feats = batch.column(0)
            n = len(feats)
            flat = pc.list_flatten(feats).to_numpy(zero_copy_only=False)
            if n == 0:
                continue
            if flat.size % n:
                raise DataError(f"parquet shard {path}: feature vectors of unequal length")
            rows = pc.index_in(batch.column(1).cast(pa.string()), value_set=value_set)
            feats = flat.reshape(n, -1)
            if rows.null_count and not skip_outside:
                bad = batch.column(1).filter(pc.is_null(rows))[0]
                raise DataError(f"image of class {bad} in {path} is outside the search space")
            if rows.null_count:
                keep = pc.is_valid(rows).to_numpy(zero_copy_only=False)
                feats, rows = feats[keep], rows.filter(pc.is_valid(rows))
                if not len(rows):
                    continue
            yield feats.astype(np.float32, copy=False), rows.to_numpy().astype(np.int64)


def gzsl_metrics(acc: Accumulator, table: ClassTable, seen: Iterable[str], unseen: Iterable[str],
                 groups: Mapping[str, str] | None = None) -> dict[str, object]:
    """Percent metrics for a results file: S, U, H, top-k, per-class top-1 and per-group means.

    ``seen``/``unseen`` name the classes whose images count toward S and U (classes without images are
    skipped); ``groups`` maps a class id to its WordNet group for per-group accuracy.
    """
    pos = table.index()
    seen_rows = [pos[c] for c in seen if c in pos]
    unseen_rows = [pos[c] for c in unseen if c in pos]
    s = acc.mean(1, seen_rows) if seen_rows else float("nan")
    u = acc.mean(1, unseen_rows) if unseen_rows else float("nan")
    out: dict[str, object] = {"S": _pct(s), "U": _pct(u)}
    out["H"] = _pct(harmonic_mean(s, u)) if np.isfinite(s) and np.isfinite(u) else None
    eval_rows = unseen_rows or seen_rows
    out["top_k"] = {f"top{k}": _pct(acc.mean(k, eval_rows)) for k in acc.ks}
    per_class = acc.per_class(1)
    out["per_class"] = {table.class_ids[r]: 100.0 * float(per_class[r])
                        for r in range(len(table.class_ids)) if acc.totals[r] > 0}
    if groups:
        by_group: dict[str, list[int]] = {}
        for r in seen_rows + unseen_rows:
            if acc.totals[r] > 0 and table.class_ids[r] in groups:
                by_group.setdefault(groups[table.class_ids[r]], []).append(r)
        out["per_group"] = {g: _pct(acc.mean(1, rows)) for g, rows in sorted(by_group.items())}
    return out


def _pct(x: float) -> float | None:
    return None if not np.isfinite(x) else round(100.0 * float(x), 4)
