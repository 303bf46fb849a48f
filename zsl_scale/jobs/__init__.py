"""Jobs: a YAML pipeline of stages, each skipped when its outputs are up to date; the stage registry and runners."""

from __future__ import annotations

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
__all__ = [*_EXPORTS]  # each public name is listed once, in _EXPORTS (name → module)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
