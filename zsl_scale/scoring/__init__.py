"""Scoring: chunked top-k kernels, class tables, per-class metrics, ImageNet split scoring to results files."""

from __future__ import annotations

from typing import TYPE_CHECKING

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
__all__ = [
    "ClassTable",
    "EvalRequest",
    "Predictions",
    "ScoreInputs",
    "ScoreSettings",
    "Scorer",
    "accumulate",
    "check_classes",
    "check_split_images",
    "check_split_names",
    "eval_set",
    "feature_manifest_hashes",
    "from_paths",
    "gzsl_metrics",
    "gzsl_search_space",
    "harmonic_mean",
    "iter_parquet_batches",
    "job_inputs",
    "linear_table",
    "make_inputs",
    "match_images",
    "mean_per_class_accuracy",
    "per_class_accuracy",
    "pretraining_check",
    "ranked",
    "read_classes_json",
    "read_groups",
    "read_predictions",
    "score_splits",
    "score_stream",
    "split_manifest_hashes",
    "trained_on",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # static analysers see the names; at run time they load on first use
    from zsl_scale.scoring.guards import check_split_images, pretraining_check, trained_on
    from zsl_scale.scoring.imagenet import (
        ScoreInputs,
        ScoreSettings,
        eval_set,
        feature_manifest_hashes,
        job_inputs,
        make_inputs,
        read_classes_json,
        read_groups,
        score_splits,
        split_manifest_hashes,
    )
    from zsl_scale.scoring.inputs import EvalRequest, check_split_names, from_paths
    from zsl_scale.scoring.metrics import harmonic_mean, mean_per_class_accuracy, per_class_accuracy
    from zsl_scale.scoring.predictions import (
        Predictions,
        accumulate,
        check_classes,
        match_images,
        ranked,
        read_predictions,
    )
    from zsl_scale.scoring.score import ClassTable, gzsl_search_space
