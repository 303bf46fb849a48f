"""Training at scale: the job config, streaming shard reader, Ray Train / DDP loop, checkpoints,
the classifier at scale."""

from __future__ import annotations

from zsl_scale.core import lazy_exports

_EXPORTS = {
    "ClassifierTask": "classifier_ray",
    "DistJobConfig": "config",
    "ScaleSettings": "config",
    "build_bank": "classifier",
    "check_runner": "runners",
    "export_model": "export",
    "fit_classifier": "classifier_ray",
    "fit_classifiers": "classifier_ray",
    "fit_local": "trainer",
    "fit_ray": "ray_fit",
    "fit_spawn": "trainer",
    "fit_vae": "runners",
    "load_class_table": "streaming",
    "load_final_model": "export",
    "load_job_config": "config",
    "load_job_inputs": "trainer",
    "open_features": "streaming",
    "prepare_job": "trainer",
    "save_classifier": "classifier",
    "state_scaler": "export",
    "train_classifier": "classifier",
}
__all__ = [*_EXPORTS]  # each public name is listed once, in _EXPORTS (name → module)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
