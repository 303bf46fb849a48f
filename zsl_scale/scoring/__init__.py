"""Scoring: chunked top-k kernels, class tables, per-class metrics, ImageNet split scoring to results files."""

from __future__ import annotations

from zsl_scale.core import lazy_exports

_EXPORTS = {
    "read_predictions": "predictions",
    "ranked": "predictions",
    "match_images": "predictions",
    "gzsl_search_space": "score",
    "check_classes": "predictions",
    "accumulate": "predictions",
    "Predictions": "predictions",
    "ClassTable": "score",
    "EvalRequest": "inputs",
    "ScoreInputs": "imagenet",
    "ScoreSettings": "imagenet",
    "Scorer": "score",
    "check_split_images": "guards",
    "check_split_names": "inputs",
    "eval_set": "imagenet",
    "pretraining_check": "guards",
    "trained_on": "guards",
    "feature_manifest_hashes": "imagenet",
    "from_paths": "inputs",
    "gzsl_metrics": "score",
    "harmonic_mean": "metrics",
    "iter_parquet_batches": "score",
    "job_inputs": "imagenet",
    "linear_table": "score",
    "make_inputs": "imagenet",
    "mean_per_class_accuracy": "metrics",
    "per_class_accuracy": "metrics",
    "read_classes_json": "imagenet",
    "read_groups": "imagenet",
    "score_splits": "imagenet",
    "score_stream": "score",
    "split_manifest_hashes": "imagenet",
}
__all__ = [*_EXPORTS]  # each public name is listed once, in _EXPORTS (name → module)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
