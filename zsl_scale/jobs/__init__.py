"""Jobs: a YAML pipeline of stages, each skipped when its outputs are up to date; the stage registry and runners."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zsl_scale.core import lazy_exports

_EXPORTS = {
    "JobOutcome": "runner",
    "JobSpec": "registry",
    "PIPELINE_ORDER": "registry",
    "RECORD": "registry",
    "StageContext": "registry",
    "StageSpec": "registry",
    "evaluate_imagenet": "imagenet_eval",
    "score_prediction_file": "imagenet_predictions",
    "load_job": "registry",
    "register_stage": "registry",
    "run_job": "runner",
    "stage_runner": "registry",
    "workdir_of": "runner",
}
__all__ = [
    "PIPELINE_ORDER",
    "RECORD",
    "JobOutcome",
    "JobSpec",
    "StageContext",
    "StageSpec",
    "evaluate_imagenet",
    "load_job",
    "register_stage",
    "run_job",
    "score_prediction_file",
    "stage_runner",
    "workdir_of",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # static analysers see the names; at run time they load on first use
    from zsl_scale.jobs.imagenet_eval import evaluate_imagenet
    from zsl_scale.jobs.registry import (
        PIPELINE_ORDER,
        RECORD,
        JobSpec,
        StageContext,
        StageSpec,
        load_job,
        register_stage,
        stage_runner,
    )
    from zsl_scale.jobs.runner import JobOutcome, run_job, workdir_of
