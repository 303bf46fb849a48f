"""Training at scale: the job config, streaming shard reader, Ray Train / DDP loop, checkpoints,
the classifier at scale."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zsl_scale.core import lazy_exports

_EXPORTS = {
    "DistJobConfig": "config",
    "ScaleSettings": "config",
    "build_bank": "classifier",
    "check_runner": "runners",
    "export_model": "export",
    "fit_classifier": "classifier_ray",
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
__all__ = [
    "DistJobConfig",
    "ScaleSettings",
    "build_bank",
    "check_runner",
    "export_model",
    "fit_classifier",
    "fit_local",
    "fit_ray",
    "fit_spawn",
    "fit_vae",
    "load_class_table",
    "load_final_model",
    "load_job_config",
    "load_job_inputs",
    "open_features",
    "prepare_job",
    "save_classifier",
    "state_scaler",
    "train_classifier",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # static analysers see the names; at run time they load on first use
    from zsl_scale.distributed.classifier import build_bank, save_classifier, train_classifier
    from zsl_scale.distributed.classifier_ray import fit_classifier
    from zsl_scale.distributed.config import DistJobConfig, ScaleSettings, load_job_config
    from zsl_scale.distributed.export import export_model, load_final_model, state_scaler
    from zsl_scale.distributed.ray_fit import fit_ray
    from zsl_scale.distributed.runners import check_runner, fit_vae
    from zsl_scale.distributed.streaming import load_class_table, open_features
    from zsl_scale.distributed.trainer import fit_local, fit_spawn, load_job_inputs, prepare_job
