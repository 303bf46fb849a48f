"""The train stage's common part: the distributed trainer under the chosen runner, then ``vae.pt``.

The train stage (:mod:`zsl_scale.jobs.stages`) calls it for either kind of job; the dataset adapter
(:mod:`zsl_scale.jobs.dataset`) decides which features and settings it passes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zsl_scale.jobs.registry import StageContext
from zsl_scale.jobs.settings import SmallTrainSettings, parse_settings


def check_runner(ctx: StageContext, runner: str, workers: int = 1) -> str:
    """``runner`` if it is a runner's name (``local``, ``spawn``, ``ray``: the CLI's vocabulary, see
    :func:`zsl_scale.distributed.check_runner`) that fits ``workers``; a one-line ConfigError otherwise."""
    from zsl_scale.distributed import check_runner as check

    return check(runner, workers, f"stage {ctx.spec.name!r}: runner")


def fit_and_export(ctx: StageContext, job: dict[str, Any], feats: Path, emb: Path, runner: str) -> list[Path]:
    """Train a CADA-VAE on ``feats`` (class embeddings ``emb``) in ``<stage>/vae`` and export ``<stage>/vae.pt``.

    Args:
        ctx: the train stage's context (its folder holds the run and the exported model).
        job: a :class:`zsl_scale.distributed.DistJobConfig` mapping without ``name`` and ``data``.
        feats: the training feature shards.
        emb: the class-embedding parquet file.
        runner: ``local`` (this process; ``scale.workers`` must be 1), ``spawn`` (``scale.workers`` local
            processes) or ``ray`` (Ray Train).
    """
    from zsl_scale.distributed import DistJobConfig, export_model, fit_vae, load_class_table, open_features, prepare_job

    data = {"features": str(feats), "embeddings": str(emb)}
    job_cfg = DistJobConfig.model_validate({**job, "name": "vae", "data": data})
    job_cfg.scale.storage_path = str(ctx.out_dir)
    check_runner(ctx, runner, job_cfg.scale.workers)
    fit_vae(prepare_job(job_cfg, open_features(feats), load_class_table(emb)), runner)
    export_model(ctx.out_dir / "vae", ctx.out_dir / "vae.pt", {
        "classifier": job_cfg.classifier.model_dump(mode="json"), "train_features": str(feats)})
    return [ctx.out_dir / "vae.pt"]


def classifier_scale(ctx: StageContext) -> Any:
    """Where the final softmax trains: on Ray Train with the train stage's ``scale`` settings when the VAE ran
    on Ray (``runner: ray``), else ``None`` (in the stage's process, as with ``local`` / ``spawn``).

    Returns a :class:`zsl_scale.distributed.ScaleSettings` or ``None``. The train stage's settings are read
    with its model (so its default runner applies: ``ray`` in a small-dataset job, ``local`` otherwise); an
    ImageNet train stage nests ``scale`` under ``job``, a small-dataset one has it at the top.
    """
    from zsl_scale.distributed import ScaleSettings

    rec = ctx.upstream_of_kind("train")
    train = parse_settings("train", rec.get("name", "train"), rec.get("config", {}), ctx.job.small_dataset)
    if train.runner != "ray":
        return None
    scale = train.scale if isinstance(train, SmallTrainSettings) else train.job.get("scale")
    return ScaleSettings.model_validate(scale or {})
