"""The built-in stage runners of ``zsl-scale run``: one implementation per stage, whatever the dataset.

Each runner reads its stage's typed settings, asks the job's dataset adapter (:func:`dataset_of`:
:mod:`zsl_scale.jobs.dataset`, an ImageNet-style job or a small xlsa17 one) what depends on the data, calls
the owning module's public entry point, and returns the files that prove it finished (recorded with hashes
in ``stage.json``). Contracts between stages:

- **splits** → ``classes.json``: ``seen`` (the label space's seen part, e.g. the 1K), ``train`` (seen
  classes used for training = seen minus ``heldout``), ``heldout`` (seen classes held out as unseen,
  for runs that must measure unseen accuracy on real images) and ``splits`` (name → wnids).
- **features** → ``shards/`` (feature shards + manifest, :mod:`zsl_scale.features.extract`).
- **embeddings** → ``embeddings.parquet`` (wnid, embedding) and ``groups.tsv`` (wnid, WordNet group).
- **train** → ``vae/`` (Ray Train / local DDP run folder, :mod:`zsl_scale.distributed.trainer`) and ``vae.pt``.
- **latents** → ``test/`` (μ of every test image, :mod:`zsl_scale.latents.generate`) and ``classifier.pt``
  (the final softmax over train ∪ unseen classes, fit on sampled latents).
- **score** → ``results/`` (one results JSON per split, :mod:`zsl_scale.scoring.imagenet`).
- **methods** → ``results/`` (one results JSON per baseline and split: :mod:`zsl_scale.jobs.imagenet_methods`,
  or per baseline on a small dataset: :mod:`zsl_scale.jobs.small_methods`).
- **leaderboard** → ``board/`` (:mod:`zsl_scale.report.leaderboard`), over every score and methods stage's results.
"""

from __future__ import annotations

from pathlib import Path

from zsl_scale.core import load_torch_file
from zsl_scale.jobs.dataset import JobDataset
from zsl_scale.jobs.imagenet_data import ImageNetData
from zsl_scale.jobs.registry import StageContext, register_stage
from zsl_scale.jobs.settings import settings_of
from zsl_scale.jobs.small_data import SmallData
from zsl_scale.jobs.vae_fit import classifier_scale, fit_and_export


def dataset_of(ctx: StageContext) -> JobDataset:
    """The adapter of the job ``ctx`` runs in: the one place the two kinds of dataset are told apart."""
    return SmallData() if ctx.job.small_dataset else ImageNetData()


@register_stage("splits", builtin=True)
def run_splits(ctx: StageContext) -> list[Path]:
    """The label space: seen / unseen classes and the test images' split (``classes.json``)."""
    return dataset_of(ctx).build_splits(ctx)


@register_stage("features", builtin=True)
def run_features(ctx: StageContext) -> list[Path]:
    """Extract backbone features of ``source`` (image tree, tar or list) into ``shards/``."""
    from zsl_scale.features import ExtractOptions, extract_features

    cfg = settings_of(ctx)  # source + ExtractOptions' fields, with its defaults
    opts = ExtractOptions(**cfg.model_dump(exclude={"source"}))
    extract_features(ctx.path(cfg.source), ctx.out_dir / "shards", opts)
    return [ctx.out_dir / "shards" / "manifest.json"]


@register_stage("embeddings", builtin=True)
def run_embeddings(ctx: StageContext) -> list[Path]:
    """One embedding per class of the label space and each class's group (``embeddings.parquet``, ``groups.tsv``)."""
    return dataset_of(ctx).embed_classes(ctx)


@register_stage("validation", builtin=True)
def run_validation(ctx: StageContext) -> list[Path]:
    """Choose the classifier epochs on validation with the reference protocol (small datasets)."""
    return dataset_of(ctx).choose_epochs(ctx)


def train_features(ctx: StageContext, features_stage: str, column: str, keep: set[str]) -> Path:
    """The training feature folder: the features stage's shards, only the rows whose ``column`` is in ``keep``
    (the stage's own folder itself when it has no other row)."""
    from zsl_scale.core import filter_shards, shard_files

    src = ctx.path(f"@{features_stage}/shards")
    out = filter_shards(shard_files(src, "features"), column, keep, ctx.out_dir / "train_features")
    return src if out is None else out


@register_stage("train", builtin=True)
def run_train(ctx: StageContext) -> list[Path]:
    """Train the CADA-VAE on the training images' features (``runner``: local, spawn or ray)."""
    cfg = settings_of(ctx)
    data = dataset_of(ctx)
    column, keep = data.train_rows(ctx, cfg)
    feats = train_features(ctx, cfg.features, column, keep)
    job = data.train_job(ctx, cfg)
    emb = Path(ctx.upstream_of_kind("embeddings")["out_dir"]) / "embeddings.parquet"
    return fit_and_export(ctx, job, feats, emb, cfg.runner)


@register_stage("latents", builtin=True)
def run_latents(ctx: StageContext) -> list[Path]:
    """μ latents of the test features, and the dataset's classifiers fit on sampled latents: on Ray Train, all
    heads in one worker group (a small dataset's GZSL and ZSL heads; their banks are small), since every group
    costs ~10 s of process start-up."""
    from zsl_scale.cada import load_model, scaler_from_extra
    from zsl_scale.core import resolve_device, shard_files
    from zsl_scale.distributed import (
        ClassifierTask,
        build_bank,
        fit_classifiers,
        load_class_table,
        open_features,
        save_classifier,
    )
    from zsl_scale.latents import LatentOptions, generate_latents

    cfg = settings_of(ctx)
    vae_path = Path(ctx.upstream_of_kind("train")["out_dir"]) / "vae.pt"
    saved = load_torch_file(vae_path, "model checkpoint")["extra"]
    plan = dataset_of(ctx).latent_plan(ctx, cfg, saved)
    shard_files(plan.test_features, "features")  # an incomplete folder is refused before any model is loaded
    train_src = open_features(saved["train_features"], require_manifest=True)
    dev = resolve_device(cfg.device)
    opts = LatentOptions(seed=plan.seed, device=cfg.device, workers=cfg.workers, encode_batch=cfg.encode_batch)
    generate_latents(vae_path, ctx.out_dir / "test", opts, features=plan.test_features)
    vae, _ = load_model(vae_path, dev)
    scaler = scaler_from_extra(saved, f"model checkpoint {vae_path}")
    emb = load_class_table(Path(ctx.upstream_of_kind("embeddings")["out_dir"]) / "embeddings.parquet")
    tasks = [ClassifierTask(build_bank(vae, train_src, emb, list(head.seen), list(head.unseen), plan.classifier,
                                       scaler, seed=head.bank_seed, device=dev), head.epochs, head.fit_seed)
             for head in plan.heads]
    fitted = fit_classifiers(tasks, plan.classifier, classifier_scale(ctx), ctx.out_dir, mode=plan.mode, device=dev)
    for head, task, (linear, history) in zip(plan.heads, tasks, fitted, strict=True):
        save_classifier(ctx.out_dir / head.file, linear, task.bank.wnids, history, head.epochs)
    return [ctx.out_dir / "test" / "manifest.json", *(ctx.out_dir / head.file for head in plan.heads)]


@register_stage("score", builtin=True)
def run_score(ctx: StageContext) -> list[Path]:
    """Score the test latents with the chunked scorer: the dataset's metrics, results JSONs in ``<stage>/results``."""
    return dataset_of(ctx).score(ctx)


@register_stage("methods", builtin=True)
def run_methods(ctx: StageContext) -> list[Path]:
    """Train the baselines and score them with the score stage's scorer: on a small dataset with
    hyper-parameters chosen on its validation split (:mod:`~zsl_scale.jobs.small_methods`), on ImageNet splits
    with hyper-parameters fixed in the config (:mod:`~zsl_scale.jobs.imagenet_methods`)."""
    return dataset_of(ctx).methods(ctx)


@register_stage("leaderboard", builtin=True)
def run_leaderboard(ctx: StageContext) -> list[Path]:
    """Leaderboard over this job's results (score and methods stages, plus any extra ``results`` folders)."""
    from zsl_scale.report import build_leaderboard

    cfg = settings_of(ctx)
    dirs = [Path(rec["out_dir"]) / "results" for rec in ctx.upstream.values() if rec["kind"] in ("score", "methods")]
    dirs += [ctx.path(p) for p in cfg.results]
    written = build_leaderboard(dirs, ctx.out_dir / "board")
    return [written["html"], written["csv"], written["markdown"]]
