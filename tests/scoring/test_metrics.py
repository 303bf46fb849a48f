"""Per-class accuracy and H on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from zsl_scale.scoring.metrics import (
    harmonic_mean,
    mean_per_class,
    mean_per_class_accuracy,
    per_class_accuracy,
    per_class_counts,
)


def test_per_class_mean_differs_from_overall_accuracy() -> None:
    # class 0: 4 images, 3 right; class 1: 1 image, 0 right → per-class mean (0.75 + 0)/2 = 0.375, overall 0.6
    y = np.array([0, 0, 0, 0, 1])
    p = np.array([0, 0, 0, 1, 0])
    assert per_class_accuracy(y, p) == {0: 0.75, 1: 0.0}
    assert mean_per_class_accuracy(y, p) == pytest.approx(0.375)
    hits, totals = per_class_counts(y, p == y, n_classes=3)
    assert hits.tolist() == [3, 0, 0] and totals.tolist() == [4, 1, 0]
    assert mean_per_class(hits, totals) == pytest.approx(0.375)  # class 2 has no images: left out


def test_harmonic_mean() -> None:
    assert harmonic_mean(0.6, 0.4) == pytest.approx(0.48)
    assert harmonic_mean(0.0, 0.0) == 0.0
    assert harmonic_mean(0.5, 0.0) == 0.0
