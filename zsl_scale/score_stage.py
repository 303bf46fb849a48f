"""The score stage of a job: test latents × the final classifier → one results JSON per split.

For each split the search space is the GZSL label space of DESIGN §1 (the seen classes, then the
split's classes; :func:`zsl_scale.score.gzsl_search_space`). Images whose class is outside that space
are not scored for that split (they belong to other splits). S is the per-class mean top-1 over the
images of the training classes, U over the images of the unseen classes (the split's classes and any
seen classes held out of training); H their harmonic mean. ``per_group`` averages per-class top-1 by
WordNet group.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zsl_scale.errors import ConfigError
from zsl_scale.io import sha256_file
from zsl_scale.jobs import StageContext
from zsl_scale.provenance import capture
from zsl_scale.results import Metrics, ResultRecord, write_result
from zsl_scale.score import (
    Scorer,
    calibrated_stacking,
    gzsl_metrics,
    gzsl_search_space,
    iter_parquet_batches,
    linear_table,
    score_stream,
)

ALLOWED = {"dataset", "method", "splits", "top_k", "device", "backend", "batch_rows", "calibrated_stacking",
           "seed", "notes"}


def _latent_shards(directory: Path) -> list[Path]:
    manifest = json.loads((directory / "manifest.json").read_text())
    return [directory / name for name in sorted(manifest["shards"])]


def score_job_splits(ctx: StageContext) -> list[Path]:
    """Run the score stage of a job (see the module docstring); returns the results files."""
    import torch

    cfg = dict(ctx.config)
    unknown = sorted(set(cfg) - ALLOWED)
    if unknown:
        raise ConfigError(f"stage {ctx.spec.name!r}: unknown config key {unknown[0]!r}")
    splits_rec = ctx.upstream_of_kind("splits")
    classes = json.loads((Path(splits_rec["out_dir"]) / "classes.json").read_text())
    lat_dir = Path(ctx.upstream_of_kind("latents")["out_dir"])
    clf = torch.load(lat_dir / "classifier.pt", map_location="cpu", weights_only=False)
    full = linear_table(clf["wnids"], clf["weight"].numpy(), clf["bias"].numpy())
    groups_path = Path(ctx.upstream_of_kind("embeddings")["out_dir"]) / "groups.tsv"
    groups = dict(line.split("\t") for line in groups_path.read_text().splitlines() if line)
    ks = tuple(int(k) for k in cfg.get("top_k", [1, 5]))
    gamma = cfg.get("calibrated_stacking")
    method = cfg.get("method", "CADA-VAE") + ("+CS" if gamma is not None else "")
    shards = _latent_shards(lat_dir / "test")
    names = cfg.get("splits") or sorted(classes["splits"])
    written = []
    for name in names:
        if name not in classes["splits"]:
            raise ConfigError(f"split {name!r} was not built by the splits stage (built: "
                              f"{', '.join(sorted(classes['splits']))})")
        space = gzsl_search_space(classes["seen"], classes["splits"][name])
        table = full.subset(space, what=f"search space of split {name}")
        if gamma is not None:
            table = calibrated_stacking(table, classes["train"], float(gamma))
        scorer = Scorer(table, k=max(ks), device=cfg.get("device", "auto"), backend=cfg.get("backend", "chunked"))
        try:
            batches = iter_parquet_batches(shards, table.class_ids, int(cfg.get("batch_rows", 65536)),
                                           feature_column="latent", skip_outside=True)
            acc = score_stream(scorer, batches, ks)
        finally:
            scorer.close()
        unseen = sorted(set(classes["heldout"]) | set(classes["splits"][name]))
        metrics = gzsl_metrics(acc, table, seen=classes["train"], unseen=unseen, groups=groups)
        record = ResultRecord(
            dataset=cfg.get("dataset", ctx.job.name), split=name, method=method, seed=int(cfg.get("seed", 0)),
            metrics=Metrics(**metrics), config=_chain_config(ctx),
            manifests=_manifests(ctx, splits_rec, name, lat_dir),
            seeds={"score": int(cfg.get("seed", 0))}, provenance=capture(scorer.device),
            extra={"search_space": len(space), "images": int(acc.totals.sum()),
                   "seen_classes": len(classes["seen"]), "heldout_classes": len(classes["heldout"]),
                   "split_classes": len(classes["splits"][name]), "backend": cfg.get("backend", "chunked"),
                   "calibrated_stacking_gamma": gamma, "classifier_epochs": clf.get("epochs"),
                   "notes": cfg.get("notes", "")})
        written.append(write_result(record, ctx.out_dir / "results"))
    return written


def _chain_config(ctx: StageContext) -> dict[str, Any]:
    """The resolved config of every stage that led to these numbers (hashed into the results file)."""
    chain = {name: {"kind": rec["kind"], "config": rec.get("config", {}), "hash": rec["hash"]}
             for name, rec in ctx.upstream.items()}
    chain[ctx.spec.name] = {"kind": ctx.spec.kind, "config": ctx.spec.config}
    return {"job": ctx.job.name, "stages": chain}


def _manifests(ctx: StageContext, splits_rec: dict[str, Any], split: str, lat_dir: Path) -> dict[str, str]:
    out = {}
    split_manifest = Path(splits_rec["out_dir"]) / "splits" / "imagenet21k" / split / "manifest.json"
    if split_manifest.is_file():
        out[f"split:{split}"] = sha256_file(split_manifest)
    for name, rec in ctx.upstream.items():
        shard_manifest = Path(rec["out_dir"]) / "shards" / "manifest.json"
        if rec["kind"] == "features" and shard_manifest.is_file():
            out[f"features:{name}"] = sha256_file(shard_manifest)
    out["latents:test"] = sha256_file(lat_dir / "test" / "manifest.json")
    out["classifier"] = sha256_file(lat_dir / "classifier.pt")
    return out


