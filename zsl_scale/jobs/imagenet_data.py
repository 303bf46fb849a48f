"""An ImageNet-style job's answers to the stage runners' data questions (:mod:`zsl_scale.jobs.dataset`).

The label space comes from WordNet: the splits stage builds zero-shot splits (ours or Xian et al.'s,
optionally restricted to the classes a copy has) and the seen label space (the 1K or a wnid list), with a
seeded fraction of the seen classes held out as unseen; the embeddings stage embeds every class with a
text model. Training uses the features of the ``train`` classes; the final softmax's epochs are fixed in
the latents config (no validation split at this scale); the score and methods stages write one results file
per zero-shot split.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from zsl_scale.core import ConfigError, atomic_write_json, atomic_write_parquet, atomic_write_text
from zsl_scale.jobs.dataset import Head, JobDataset, LatentPlan
from zsl_scale.jobs.registry import StageContext
from zsl_scale.jobs.settings import settings_of


def read_classes(ctx: StageContext) -> dict[str, Any]:
    """The ``classes.json`` of the job's splits stage."""
    rec = ctx.upstream_of_kind("splits")
    return json.loads((Path(rec["out_dir"]) / "classes.json").read_text())


def _split_name(folder: Path) -> str:
    """The canonical split name of a built split's folder (``<set>[@U]/<split>`` → ``[xian2018/]<split>[@U]``)."""
    dataset, sep, uid = folder.parent.name.partition("@")
    return ("" if dataset == "imagenet21k" else f"{dataset}/") + folder.name + sep + uid


class ImageNetData(JobDataset):
    """ImageNet splits from WordNet, text-model class embeddings, epochs fixed in the config."""

    small = False

    def build_splits(self, ctx: StageContext) -> list[Path]:
        """Build the splits named in ``splits`` (Xian et al.'s are copied after a sha256 check) and the seen /
        held-out class lists."""
        from zsl_scale.imagenet import build_splits, load_split, read_wnid_list, split_seen

        cfg = settings_of(ctx)
        # ours (2H, M500, …) or Xian et al.'s (xian2018/M500, …), each optionally restricted (NAME@U, or `universe`)
        root = ctx.out_dir / "splits"
        universe = cfg.universe
        if universe and ":" in universe:  # a user copy's classes: counts:<file> / features:<dir>, relative to the job
            kind, _, source = universe.partition(":")
            universe = f"{kind}:{ctx.path(source)}"
        dirs = build_splits(list(cfg.splits), root=root, counts_path=ctx.path(cfg.counts) if cfg.counts else None,
                            wordnet=cfg.wordnet, xian_source=ctx.path(cfg.xian_source) if cfg.xian_source else None,
                            universe=universe)
        names = [_split_name(d) for d in dirs]
        seen = split_seen(names[0], root) if cfg.seen == "1k" else read_wnid_list(ctx.path(cfg.seen))
        if cfg.seen == "1k" and any(split_seen(n, root) != seen for n in names):
            raise ConfigError(f"stage {ctx.spec.name!r}: the splits {', '.join(names)} restrict the 1K differently "
                              "(different universes); one universe per job")
        heldout: list[str] = []
        if cfg.holdout:
            rng = np.random.default_rng(cfg.holdout.seed)
            n = round(cfg.holdout.fraction * len(seen))
            heldout = sorted(rng.choice(sorted(seen), size=n, replace=False).tolist())
        held = set(heldout)
        doc = {"seen": sorted(seen), "train": sorted(w for w in seen if w not in held), "heldout": heldout,
               "splits": {n: load_split(n, root) for n in names}, "split_root": str(root),
               "split_images": cfg.split_images}
        atomic_write_json(ctx.out_dir / "classes.json", doc)
        return [ctx.out_dir / "classes.json"]

    def embed_classes(self, ctx: StageContext) -> list[Path]:
        """Embed every class of the label space (seen ∪ splits) and record each class's WordNet group."""
        import pyarrow as pa

        from zsl_scale.core import vector_array
        from zsl_scale.embeddings import embed_classes, load_class_embeddings, resolve_text_model
        from zsl_scale.imagenet import load_hierarchy

        cfg = settings_of(ctx)
        classes = read_classes(ctx)
        wnids = sorted(set(classes["seen"]).union(*map(set, classes["splits"].values())))
        model = resolve_text_model(cfg.model, cfg.model_id)
        cache = ctx.path(cfg.cache) if cfg.cache else None
        embed_classes(wnids, model, batch_size=cfg.batch_size, device=cfg.device, cache_root=cache, progress=False)
        vectors = load_class_embeddings(wnids, model.model_id, cache)
        table = pa.table({"wnid": pa.array(wnids, pa.string()), "embedding": vector_array(vectors)})
        atomic_write_parquet(ctx.out_dir / "embeddings.parquet", table)
        hier = load_hierarchy(cfg.wordnet)
        atomic_write_text(ctx.out_dir / "groups.tsv", "".join(f"{w}\t{hier.group_of(w)}\n" for w in wnids))
        return [ctx.out_dir / "embeddings.parquet", ctx.out_dir / "groups.tsv"]

    def train_rows(self, ctx: StageContext, settings: Any) -> tuple[str, set[str]]:
        """The images of the ``train`` classes (the held-out seen classes' images removed)."""
        return "wnid", set(read_classes(ctx)["train"])

    def train_job(self, ctx: StageContext, settings: Any) -> dict[str, Any]:
        """The train stage's own ``job`` sections (model, train, classifier, scale)."""
        return settings.job

    def latent_plan(self, ctx: StageContext, settings: Any, saved: dict[str, Any]) -> LatentPlan:
        """One softmax over train ∪ every unseen class (held-out ∪ the splits' classes), ``epochs`` fixed
        beforehand; the checkpoint's classifier settings updated by the stage's ``classifier``."""
        from zsl_scale.core import ClassifierConfig

        classes = read_classes(ctx)
        train = classes["train"]
        unseen = sorted((set(classes["heldout"]).union(*map(set, classes["splits"].values()))) - set(train))
        ccfg = ClassifierConfig.model_validate({**saved.get("classifier", {}), **settings.classifier})
        seed = settings.seed
        return LatentPlan(seed, ctx.path(settings.test_features + "/shards"), ccfg,
                          [Head("classifier.pt", train, unseen, settings.epochs, seed, seed)])

    def score(self, ctx: StageContext) -> list[Path]:
        """One results JSON per split: S, U, H, top-k, per class and per WordNet group over its search space."""
        from zsl_scale.results import job_chain_sha256
        from zsl_scale.scoring import ScoreSettings, job_inputs, score_splits

        settings_of(ctx)  # typed check (keys, types); ScoreSettings applies them
        settings = ScoreSettings.from_config(dict(ctx.config), ctx.job.name, f"stage {ctx.spec.name!r}")
        splits_rec = ctx.upstream_of_kind("splits")
        lat_dir = Path(ctx.upstream_of_kind("latents")["out_dir"])
        groups_path = Path(ctx.upstream_of_kind("embeddings")["out_dir"]) / "groups.tsv"
        inputs = job_inputs(Path(splits_rec["out_dir"]), lat_dir, groups_path, list(ctx.upstream.values()),
                            ctx.chain_config())
        inputs.manifests["job"] = job_chain_sha256(ctx.upstream)
        return score_splits(inputs, settings, ctx.out_dir / "results")

    def methods(self, ctx: StageContext) -> list[Path]:
        """The baselines with hyper-parameters fixed in the job config (:mod:`zsl_scale.jobs.imagenet_methods`)."""
        from zsl_scale.jobs.imagenet_methods import run_methods

        return run_methods(ctx)
