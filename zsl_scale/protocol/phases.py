"""The phases of the small-benchmark protocol as data: which rows train, which classes are seen or unseen.

Validation and test differ only in their rows and classes (see :mod:`zsl_scale.protocol.evaluate`):
the validation phase trains on ``train`` and evaluates on held-out seen rows and the ``val`` classes
(or another class fold), the test phase trains on ``trainval`` and evaluates on ``test_seen`` /
``test_unseen``. GFSL moves ``shots`` images per unseen class into training.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from zsl_scale.core import DataError, ProtocolConfig
from zsl_scale.datasets import Benchmark


@dataclass
class Phase:
    """The rows and classes of one phase (0-based rows of the benchmark, class indices)."""

    name: str
    train_rows: np.ndarray
    seen_classes: np.ndarray
    unseen_classes: np.ndarray
    eval_seen_rows: np.ndarray
    eval_unseen_rows: np.ndarray
    shot_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def make_phase(bench: Benchmark, name: str, cfg: ProtocolConfig, shots: int, seed: int, fold: int = 0) -> Phase:
    """Build the validation or test phase of ``bench`` (see module docstring).

    ``fold`` > 0 (validation only) swaps the benchmark's ``val`` classes for another disjoint set of
    ``train`` classes of the same size (:func:`fold_classes`): class-level cross-validation.
    """
    rng = np.random.default_rng(seed)
    labels = bench.labels
    if name == "test":
        train = bench.splits["trainval"]
        eval_seen, eval_unseen = bench.splits["test_seen"], bench.splits["test_unseen"]
    elif name == "val":
        train, eval_unseen = bench.splits["train"], bench.splits["val"]
        if fold > 0:
            trainval = np.concatenate([train, eval_unseen])
            held = np.isin(labels[trainval], fold_classes(bench, fold, seed))
            train, eval_unseen = np.sort(trainval[~held]), np.sort(trainval[held])
        if cfg.eval.validation == "clean":
            test_rows = np.concatenate([bench.splits["test_seen"], bench.splits["test_unseen"]])
            train = np.setdiff1d(train, test_rows)
            eval_unseen = np.setdiff1d(eval_unseen, test_rows)
        train, eval_seen = _holdout(train, labels, cfg.eval.seen_val_fraction, rng)
    else:
        raise ValueError(f"unknown phase {name!r}")
    seen = np.unique(labels[train])
    unseen = np.unique(labels[eval_unseen])
    if np.intersect1d(seen, unseen).size:
        raise DataError(f"{bench.name}: {name} phase has classes that are both seen and unseen")
    shot_rows = np.zeros(0, dtype=np.int64)
    if shots > 0:
        shot_rows = _pick_shots(eval_unseen, labels, shots, rng)
        eval_unseen = np.setdiff1d(eval_unseen, shot_rows)
    return Phase(name, np.sort(train), seen, unseen, np.sort(eval_seen), np.sort(eval_unseen), shot_rows)


def fold_classes(bench: Benchmark, fold: int, seed: int) -> np.ndarray:
    """Unseen classes of validation fold ``fold`` ≥ 1: a seeded draw of ``train`` classes, disjoint per fold.

    Each fold holds out as many classes as the benchmark's ``val`` split. Folds are disjoint chunks of one
    seeded permutation of the ``train`` classes, so there are at most ⌊#train / #val⌋ extra folds.
    """
    val_classes = np.unique(bench.labels[bench.splits["val"]])
    train_classes = np.setdiff1d(np.unique(bench.labels[bench.splits["train"]]), val_classes)
    n = len(val_classes)
    if fold * n > len(train_classes):
        raise DataError(f"{bench.name}: {len(train_classes)} train classes allow at most "
                        f"{len(train_classes) // n + 1} validation folds of {n} classes, not {fold + 1}")
    perm = np.random.default_rng([seed, 7919]).permutation(train_classes)
    return np.sort(perm[(fold - 1) * n : fold * n])


def _holdout(rows: np.ndarray, labels: np.ndarray, fraction: float, rng: np.random.Generator):
    keep, held = [], []
    for c in np.unique(labels[rows]):
        r = rng.permutation(rows[labels[rows] == c])
        k = round(len(r) * fraction) if len(r) > 1 else 0
        held.append(r[:k])
        keep.append(r[k:])
    return np.concatenate(keep), np.concatenate(held)


def _pick_shots(rows: np.ndarray, labels: np.ndarray, shots: int, rng: np.random.Generator) -> np.ndarray:
    picked = []
    for c in np.unique(labels[rows]):
        r = rows[labels[rows] == c]
        if len(r) <= shots:
            raise DataError(f"class {c} has {len(r)} evaluation images; cannot move {shots} shots into training")
        picked.append(np.sort(rng.choice(r, size=shots, replace=False)))
    return np.concatenate(picked)


def setting_name(shots: int) -> str:
    return "gzsl" if shots == 0 else f"gfsl-{shots}"
