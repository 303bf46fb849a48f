"""A small dataset's answers to the stage runners' data questions (:mod:`zsl_scale.jobs.dataset`).

The stages' data live in :mod:`zsl_scale.jobs.small` (splits, embeddings, validation, the job's benchmark),
:mod:`zsl_scale.jobs.small_score` (GZSL + ZSL scoring) and :mod:`zsl_scale.jobs.small_methods` (baselines
chosen on validation); this class points the shared stage runners at them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zsl_scale.jobs.dataset import Head, JobDataset, LatentPlan
from zsl_scale.jobs.registry import StageContext
from zsl_scale.jobs.small import (
    build_small_splits,
    choose_small_epochs,
    embed_small_classes,
    run_config_of,
    selection_of,
    small_classes,
    small_split_ids,
)
from zsl_scale.jobs.small_methods import run_small_methods
from zsl_scale.jobs.small_score import score_small


class SmallData(JobDataset):
    """An xlsa17 split: its own classes, ``att`` embeddings, and epochs chosen on its validation split."""

    small = True

    def build_splits(self, ctx: StageContext) -> list[Path]:
        return build_small_splits(ctx)

    def embed_classes(self, ctx: StageContext) -> list[Path]:
        return embed_small_classes(ctx)

    def choose_epochs(self, ctx: StageContext) -> list[Path]:
        return choose_small_epochs(ctx)

    def train_rows(self, ctx: StageContext, settings: Any) -> tuple[str, set[str]]:
        """The split's ``trainval`` images."""
        return "image_id", set(small_split_ids(ctx)["trainval"])

    def train_job(self, ctx: StageContext, settings: Any) -> dict[str, Any]:
        """The validation stage's protocol settings (model, schedule, classifier, seed), scaled by ``scale``."""
        run_cfg = run_config_of(ctx)
        return {"seed": run_cfg.seed, "model": run_cfg.model.model_dump(), "train": run_cfg.train.model_dump(),
                "classifier": run_cfg.classifier.model_dump(), "scale": settings.scale}

    def latent_plan(self, ctx: StageContext, settings: Any, saved: dict[str, Any]) -> LatentPlan:
        """μ of every image (the score stage keeps the test rows); the GZSL (seen ∪ unseen) and ZSL (unseen
        only) classifiers for the epochs the validation stage chose."""
        run_cfg, classes, sel = run_config_of(ctx), small_classes(ctx), selection_of(ctx)
        seed, unseen = run_cfg.seed, list(classes["unseen"])
        heads = [Head("classifier.pt", list(classes["seen"]), unseen, int(sel["gzsl_epochs"]), seed + 1, seed + 2),
                 Head("classifier_zsl.pt", [], unseen, int(sel["zsl_epochs"]), seed + 1, seed + 2)]
        return LatentPlan(seed, ctx.path(f"@{settings.features}/shards"), run_cfg.classifier, heads, settings.mode)

    def score(self, ctx: StageContext) -> list[Path]:
        return score_small(ctx)

    def methods(self, ctx: StageContext) -> list[Path]:
        return run_small_methods(ctx)
