"""The built-in stage runners of ``zsl-scale run``: thin adapters from a job stage to each stage module.

Each runner reads its stage config, calls the owning module's public entry point, and returns the
files that prove it finished (recorded with hashes in ``stage.json``). Contracts between stages:

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
  or per baseline on a small benchmark: :mod:`zsl_scale.jobs.bench_methods`).
- **leaderboard** → ``board/`` (:mod:`zsl_scale.report.leaderboard`), over every score and methods stage's results.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from zsl_scale.core import ConfigError, atomic_write_json, atomic_write_parquet, atomic_write_text, load_torch_file
from zsl_scale.jobs import bench, bench_eval, bench_methods, imagenet_methods
from zsl_scale.jobs.registry import StageContext, register_stage
from zsl_scale.jobs.settings import settings_of
from zsl_scale.jobs.vae_fit import classifier_scale, fit_and_export


def read_classes(ctx: StageContext) -> dict[str, Any]:
    """The ``classes.json`` of the job's splits stage."""
    rec = ctx.upstream_of_kind("splits")
    return json.loads((Path(rec["out_dir"]) / "classes.json").read_text())


@register_stage("splits", builtin=True)
def run_splits(ctx: StageContext) -> list[Path]:
    """Build the splits named in ``splits`` (Xian et al.'s are copied after a sha256 check) and the seen /
    held-out class lists."""
    from zsl_scale.imagenet import build_splits, load_split, read_wnid_list, split_seen

    if "benchmark" in ctx.config:  # a small benchmark's own split (jobs.bench)
        return bench.run_bench_splits(ctx)
    typed = settings_of(ctx)  # keys, types and bounds (jobs.settings); the mapping below keeps its raw values
    cfg = ctx.config
    # ours (2H, M500, …) or Xian et al.'s (xian2018/M500, …), each optionally restricted (NAME@U, or `universe`)
    root = ctx.out_dir / "splits"
    counts, xian = cfg.get("counts"), cfg.get("xian_source")
    universe = cfg.get("universe")
    if universe and ":" in universe:  # a user copy's classes: counts:<file> / features:<dir>, relative to the job
        kind, _, source = universe.partition(":")
        universe = f"{kind}:{ctx.path(source)}"
    dirs = build_splits(list(cfg.get("splits", ["2H"])), root=root, counts_path=ctx.path(counts) if counts else None,
                        wordnet=cfg.get("wordnet"), xian_source=ctx.path(xian) if xian else None, universe=universe)
    names = [_split_name(d) for d in dirs]
    if cfg.get("split_images", "required") not in ("required", "distractors"):
        raise ConfigError(f"stage {ctx.spec.name!r}: split_images must be required or distractors")
    seen_cfg = cfg.get("seen", "1k")
    seen = split_seen(names[0], root) if seen_cfg == "1k" else read_wnid_list(ctx.path(seen_cfg))
    if seen_cfg == "1k" and any(split_seen(n, root) != seen for n in names):
        raise ConfigError(f"stage {ctx.spec.name!r}: the splits {', '.join(names)} restrict the 1K differently "
                          "(different universes); one universe per job")
    heldout: list[str] = []
    if typed.holdout:
        rng = np.random.default_rng(typed.holdout.seed)
        n = round(typed.holdout.fraction * len(seen))
        heldout = sorted(rng.choice(sorted(seen), size=n, replace=False).tolist())
    held = set(heldout)
    doc = {"seen": sorted(seen), "train": sorted(w for w in seen if w not in held), "heldout": heldout,
           "splits": {n: load_split(n, root) for n in names}, "split_root": str(root),
           "split_images": cfg.get("split_images", "required")}
    atomic_write_json(ctx.out_dir / "classes.json", doc)
    return [ctx.out_dir / "classes.json"]


def _split_name(folder: Path) -> str:
    """The canonical split name of a built split's folder (``<set>[@U]/<split>`` → ``[xian2018/]<split>[@U]``)."""
    dataset, sep, uid = folder.parent.name.partition("@")
    return ("" if dataset == "imagenet21k" else f"{dataset}/") + folder.name + sep + uid


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
    """Embed every class of the label space (seen ∪ splits) and record each class's WordNet group."""
    import pyarrow as pa

    from zsl_scale.core import vector_array
    from zsl_scale.embeddings import embed_classes, load_class_embeddings, resolve_text_model
    from zsl_scale.imagenet import load_hierarchy

    if bench.is_benchmark_job(ctx):  # the benchmark's own class embeddings (att)
        return bench.run_bench_embeddings(ctx)
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


def _train_features(ctx: StageContext, features_stage: str, keep: set[str]) -> Path:
    """The training feature folder: the features stage's shards, minus held-out classes' images."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from zsl_scale.distributed import open_features

    src = ctx.path(f"@{features_stage}/shards")
    source = open_features(src)
    if set(source.class_counts) <= keep:
        return src
    out = ctx.out_dir / "train_features"
    for path in source.files:  # one shard at a time: bounded memory
        table = pq.read_table(path)
        table = table.filter(pc.is_in(table.column("wnid"), value_set=_arrow_strings(sorted(keep))))
        atomic_write_parquet(out / path.name, table)
    return out


def _arrow_strings(values: list[str]):
    import pyarrow as pa

    return pa.array(values, pa.string())


@register_stage("validation", builtin=True)
def run_validation(ctx: StageContext) -> list[Path]:
    """Choose the classifier epochs on validation with the reference protocol (small benchmarks, jobs.bench)."""
    return bench.run_validation(ctx)


@register_stage("train", builtin=True)
def run_train(ctx: StageContext) -> list[Path]:
    """Train the CADA-VAE on the train classes' features (``runner``: local, spawn or ray)."""
    if bench.is_benchmark_job(ctx):
        return bench_eval.run_bench_train(ctx)
    cfg = settings_of(ctx)
    classes = read_classes(ctx)
    feats = _train_features(ctx, cfg.features, set(classes["train"]))
    emb = Path(ctx.upstream_of_kind("embeddings")["out_dir"]) / "embeddings.parquet"
    return fit_and_export(ctx, cfg.job, feats, emb, cfg.runner)


@register_stage("latents", builtin=True)
def run_latents(ctx: StageContext) -> list[Path]:
    """μ latents of the test features, and the final softmax over train ∪ unseen classes."""

    from zsl_scale.core import ClassifierConfig, resolve_device
    from zsl_scale.distributed import build_bank, fit_classifier, load_class_table, open_features, save_classifier
    from zsl_scale.latents import LatentOptions, generate_latents
    from zsl_scale.method import load_model, scaler_from_extra

    if bench.is_benchmark_job(ctx):
        return bench_eval.run_bench_latents(ctx)
    cfg = settings_of(ctx)  # ``epochs`` is required: chosen beforehand on a validation split, never on test
    train_dir = Path(ctx.upstream_of_kind("train")["out_dir"])
    vae_path = train_dir / "vae.pt"
    classes = read_classes(ctx)
    seed, dev = cfg.seed, resolve_device(cfg.device)
    opts = LatentOptions(seed=seed, device=cfg.device, workers=cfg.workers, encode_batch=cfg.encode_batch)
    generate_latents(vae_path, ctx.out_dir / "test", opts, features=ctx.path(cfg.test_features + "/shards"))
    vae, _ = load_model(vae_path, dev)
    saved = load_torch_file(vae_path, "model checkpoint")["extra"]
    ccfg = ClassifierConfig.model_validate({**saved.get("classifier", {}), **cfg.classifier})
    train = classes["train"]
    unseen = sorted((set(classes["heldout"]).union(*map(set, classes["splits"].values()))) - set(train))
    emb = load_class_table(Path(ctx.upstream_of_kind("embeddings")["out_dir"]) / "embeddings.parquet")
    scaler = scaler_from_extra(saved, f"model checkpoint {vae_path}")
    bank = build_bank(vae, open_features(saved["train_features"]), emb, train, unseen, ccfg, scaler, seed=seed,
                      device=dev)
    linear, history = fit_classifier(bank, ccfg, cfg.epochs, classifier_scale(ctx), ctx.out_dir, seed=seed,
                                     device=dev)
    save_classifier(ctx.out_dir / "classifier.pt", linear, bank.wnids, history, cfg.epochs)
    return [ctx.out_dir / "test" / "manifest.json", ctx.out_dir / "classifier.pt"]


@register_stage("score", builtin=True)
def run_score(ctx: StageContext) -> list[Path]:
    """Score the test latents over each split's GZSL search space; one results JSON per split.

    Inputs come from the upstream stages' records; results land in ``<stage>/results``.
    """
    from zsl_scale.scoring import ScoreSettings, job_inputs, score_splits

    if bench.is_benchmark_job(ctx):
        return bench_eval.run_bench_score(ctx)
    settings_of(ctx)  # typed check (keys, types); ScoreSettings applies them
    settings = ScoreSettings.from_config(dict(ctx.config), ctx.job.name, f"stage {ctx.spec.name!r}")
    splits_rec = ctx.upstream_of_kind("splits")
    lat_dir = Path(ctx.upstream_of_kind("latents")["out_dir"])
    groups_path = Path(ctx.upstream_of_kind("embeddings")["out_dir"]) / "groups.tsv"
    chain = {name: {"kind": rec["kind"], "config": rec.get("config", {}), "hash": rec["hash"]}
             for name, rec in ctx.upstream.items()}
    chain[ctx.spec.name] = {"kind": ctx.spec.kind, "config": ctx.spec.config}
    inputs = job_inputs(Path(splits_rec["out_dir"]), lat_dir, groups_path, list(ctx.upstream.values()),
                        {"job": ctx.job.name, "stages": chain})
    return score_splits(inputs, settings, ctx.out_dir / "results")


@register_stage("methods", builtin=True)
def run_methods(ctx: StageContext) -> list[Path]:
    """Train the baselines and score them with the score stage's scorer: on a small benchmark with
    hyper-parameters chosen on its validation split (:mod:`~zsl_scale.jobs.bench_methods`), on ImageNet splits
    with hyper-parameters fixed in the config (:mod:`~zsl_scale.jobs.imagenet_methods`)."""
    if bench.is_benchmark_job(ctx):
        return bench_methods.run_bench_methods(ctx)
    return imagenet_methods.run_methods(ctx)


@register_stage("leaderboard", builtin=True)
def run_leaderboard(ctx: StageContext) -> list[Path]:
    """Leaderboard over this job's results (score and methods stages, plus any extra ``results`` folders)."""
    from zsl_scale.report import build_leaderboard

    cfg = settings_of(ctx)
    dirs = [Path(rec["out_dir"]) / "results" for rec in ctx.upstream.values() if rec["kind"] in ("score", "methods")]
    dirs += [ctx.path(p) for p in cfg.results]
    written = build_leaderboard(dirs, ctx.out_dir / "board")
    return [written["html"], written["csv"], written["markdown"]]
