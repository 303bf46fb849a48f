"""Prediction files: a method's test outputs produced anywhere, scored here by the one scorer.

A prediction file is a parquet table with one row per test image:

* ``image_id`` (string): the benchmark's image id (a small benchmark's ``image_id``, e.g.
  ``jpg/image_06765.jpg`` on Flowers; the ``image_id`` of a job's feature shards on ImageNet);
* and either ``scores`` (list<float>: one score per class, higher is better, in the order of the class
  list stored as a JSON list under the file's schema metadata key ``classes``), or ``topk`` (list<string>:
  class ids, best first).

Optional metadata key ``method``: the name results and the leaderboard give it (default: the file's stem).

Why so strict: a number from someone else's outputs is only comparable if it is over exactly our test
images and our class set. So every test image must appear exactly once, no other image may, a ``scores``
file must name exactly the search space's classes, a ``topk`` file only classes of it, and no score may be
NaN; each violation is one :class:`~zsl_scale.core.DataError` naming the file and the first offender.

Ranking rule: the scorer's — by score descending, ties to the class listed first *in the search space's
order* (the same arg-max rule as a method's own logits), so a file written from a built-in method's scores
reproduces its numbers exactly. A ``topk`` list is restricted to each search space in its given order;
a class list shorter than k counts as a miss beyond its end.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zsl_scale.core import DataError, sha256_file
from zsl_scale.scoring.kernels import BlockResult
from zsl_scale.scoring.score import Accumulator


@dataclass
class Predictions:
    """A validated prediction file (rows in file order)."""

    path: Path
    sha256: str
    method: str
    image_ids: list[str]
    classes: list[str] | None = None  # ``scores`` column order
    scores: np.ndarray | None = None  # [n, len(classes)] float64
    topk: list[list[str]] | None = None

    @property
    def kind(self) -> str:
        return "scores" if self.scores is not None else "topk"

    def selection_source(self) -> str:
        """The ``selection_source`` of every result scored from this file."""
        return (f"prediction file {self.path.name} (sha256 {self.sha256[:12]}…) made outside zsl-scale: its "
                "epochs and hyper-parameters were chosen by its producer, not validated here")

    def provenance(self) -> dict[str, object]:
        """What results files record about the file."""
        return {"path": str(self.path.resolve()), "sha256": self.sha256, "format": self.kind,
                "rows": len(self.image_ids)}


def read_predictions(path: str | Path) -> Predictions:
    """Read and check a prediction file's own structure (its images and classes are checked against a
    benchmark by :func:`match_images` and :func:`check_classes`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    where = f"prediction file {path}"
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"cannot read {where}: {str(exc).splitlines()[0]}") from exc
    names = table.column_names
    if "image_id" not in names:
        raise DataError(f"{where} has no 'image_id' column (columns: {', '.join(names)})")
    has = [c for c in ("scores", "topk") if c in names]
    if len(has) != 1:
        raise DataError(f"{where} needs exactly one of the columns 'scores' or 'topk' (columns: {', '.join(names)})")
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    ids = [str(i) for i in table.column("image_id").to_pylist()]
    if any(i in ("", "None") for i in ids):
        raise DataError(f"{where}: an image_id is empty or null")
    dup = _first_duplicate(ids)
    if dup is not None:
        raise DataError(f"{where}: image {dup!r} appears more than once (one row per test image)")
    out = Predictions(path, sha256_file(path), meta.get("method") or path.stem, ids)
    if has == ["scores"]:
        out.classes = _classes(meta, where)
        out.scores = _scores(table.column("scores"), len(out.classes), ids, where)
    else:
        rows = table.column("topk").to_pylist()
        bad = next((i for i, r in enumerate(rows) if not r or any(c is None for c in r)), None)
        if bad is not None:
            raise DataError(f"{where}: image {ids[bad]!r} has an empty or null topk list")
        out.topk = [[str(c) for c in r] for r in rows]
    return out


def _first_duplicate(items: Sequence[str]) -> str | None:
    seen: set[str] = set()
    for item in items:
        if item in seen:
            return item
        seen.add(item)
    return None


def _classes(meta: dict[str, str], where: str) -> list[str]:
    if "classes" not in meta:
        raise DataError(f"{where} has 'scores' but no 'classes' metadata (a JSON list of class ids in score order)")
    try:
        classes = json.loads(meta["classes"])
    except ValueError as exc:
        raise DataError(f"{where}: 'classes' metadata is not JSON: {exc}") from exc
    if not isinstance(classes, list) or not classes:
        raise DataError(f"{where}: 'classes' metadata must be a non-empty JSON list of class ids")
    classes = [str(c) for c in classes]
    dup = _first_duplicate(classes)
    if dup is not None:
        raise DataError(f"{where}: class {dup!r} is listed twice in 'classes'")
    return classes


def _scores(column: object, n_classes: int, ids: list[str], where: str) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type)):
        raise DataError(f"{where}: 'scores' must be a list of floats per image, not {col.type}")
    lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
    bad = np.flatnonzero(lengths != n_classes)
    if bad.size:
        raise DataError(f"{where}: image {ids[bad[0]]!r} has {lengths[bad[0]]} scores but 'classes' lists "
                        f"{n_classes}")
    flat = pc.list_flatten(col).to_numpy(zero_copy_only=False)
    try:
        scores = flat.astype(np.float64).reshape(len(ids), n_classes)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{where}: 'scores' are not numbers ({exc})") from exc
    nan = np.flatnonzero(~np.isfinite(scores).all(axis=1))
    if nan.size:
        raise DataError(f"{where}: image {ids[nan[0]]!r} has a NaN or infinite score ({nan.size} image(s))")
    return scores


def match_images(pred: Predictions, test_ids: Sequence[str], what: str) -> np.ndarray:
    """Row of ``pred`` for each of ``test_ids``; an unknown or a missing image is a DataError."""
    pos = {i: r for r, i in enumerate(pred.image_ids)}
    known = set(test_ids)
    unknown = [i for i in pred.image_ids if i not in known]
    if unknown:
        raise DataError(f"prediction file {pred.path}: image {unknown[0]!r} is not a test image of {what} "
                        f"({len(unknown)} unknown image id(s))")
    missing = [i for i in test_ids if i not in pos]
    if missing:
        raise DataError(f"prediction file {pred.path} lacks {len(missing)} test image(s) of {what}, "
                        f"e.g. {missing[0]!r}")
    return np.array([pos[i] for i in test_ids], np.int64)


def check_classes(pred: Predictions, classes: Sequence[str], what: str) -> None:
    """A ``scores`` file names exactly ``classes``; a ``topk`` file names only classes of it."""
    want = set(classes)
    if pred.classes is not None:
        extra = [c for c in pred.classes if c not in want]
        lacking = [c for c in classes if c not in set(pred.classes)]
        if extra or lacking:
            detail = f"class {extra[0]!r} is not one of them" if extra else f"it lacks class {lacking[0]!r}"
            raise DataError(f"prediction file {pred.path}: 'classes' must be exactly the {len(want)} classes of "
                            f"{what}; {detail}")
        return
    assert pred.topk is not None
    for image, row in zip(pred.image_ids, pred.topk, strict=True):
        bad = next((c for c in row if c not in want), None)
        if bad is not None:
            raise DataError(f"prediction file {pred.path}: image {image!r} ranks class {bad!r}, which is not one "
                            f"of the {len(want)} classes of {what}")


def ranked(pred: Predictions, rows: np.ndarray, space: Sequence[str], k: int, batch: int = 4096) -> np.ndarray:
    """Top-``k`` positions in ``space`` for the file's ``rows`` (``[n, k]``, −1 past a short topk list).

    Scores: descending, ties to the earlier class of ``space`` (the arg-max rule); topk: its order,
    restricted to ``space``.
    """
    k = min(k, len(space))
    out = np.full((len(rows), k), -1, np.int64)
    if pred.scores is not None:
        assert pred.classes is not None
        col = {c: j for j, c in enumerate(pred.classes)}
        cols = np.array([col[c] for c in space], np.int64)
        for i in range(0, len(rows), batch):
            block = pred.scores[rows[i : i + batch]][:, cols]
            out[i : i + batch] = np.argsort(-block, axis=1, kind="stable")[:, :k]
        return out
    assert pred.topk is not None
    pos = {c: j for j, c in enumerate(space)}
    for i, r in enumerate(rows):
        hits = [pos[c] for c in pred.topk[r] if c in pos][:k]
        out[i, : len(hits)] = hits
    return out


def accumulate(ranks: np.ndarray, labels: np.ndarray, n_classes: int, ks: Sequence[int]) -> Accumulator:
    """The scorer's per-class hit/total counts from ranked positions (what :func:`score_stream` sums)."""
    acc = Accumulator(n_classes, tuple(ks))
    acc.update(labels, BlockResult(np.zeros(ranks.shape, np.float32), ranks))
    return acc
