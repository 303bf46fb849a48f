"""Per-class accuracy metrics, as the GZSL literature reports them.

The paper (and Xian et al.) average top-1 *per class* and then over classes, so that frequent classes
do not dominate; H is the harmonic mean of seen and unseen accuracy. These helpers are shared by the
small-benchmark evaluation and the streaming ImageNet scorer (which accumulates the same counts).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def per_class_accuracy(
    y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[int] | np.ndarray | None = None
) -> dict[int, float]:
    """Top-1 accuracy of each class in ``classes`` (default: the classes present in ``y_true``).

    Classes listed but absent from ``y_true`` are left out: an accuracy over zero images is undefined.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"shape mismatch: y_true {y_true.shape} vs y_pred {y_pred.shape}")
    wanted = np.unique(y_true) if classes is None else np.asarray(classes)
    out: dict[int, float] = {}
    for c in wanted:
        mask = y_true == c
        n = int(mask.sum())
        if n:
            out[int(c)] = float((y_pred[mask] == c).sum() / n)
    return out


def per_class_counts(y_true: np.ndarray, correct: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(hits, totals) per class id in ``[0, n_classes)`` — the accumulators a streaming scorer sums."""
    y_true = np.asarray(y_true, dtype=np.int64)
    hits = np.bincount(y_true, weights=np.asarray(correct, dtype=np.float64), minlength=n_classes)
    totals = np.bincount(y_true, minlength=n_classes).astype(np.float64)
    return hits, totals


def mean_per_class(hits: np.ndarray, totals: np.ndarray) -> float:
    """Mean over classes with at least one sample of hits/total."""
    mask = totals > 0
    if not mask.any():
        return float("nan")
    return float(np.mean(hits[mask] / totals[mask]))


def mean_per_class_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean over the classes present in ``y_true`` of their top-1 accuracy."""
    acc = per_class_accuracy(y_true, y_pred)
    return float(np.mean(list(acc.values()))) if acc else float("nan")


def harmonic_mean(seen: float, unseen: float) -> float:
    """H = 2SU / (S + U); 0 when both are 0 (a model that gets nothing right has H = 0, not NaN)."""
    if seen + unseen == 0:
        return 0.0
    return 2.0 * seen * unseen / (seen + unseen)
