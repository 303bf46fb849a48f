"""The ``methods`` stage: the registry's baselines on the job's ImageNet data, scored like CADA-VAE.

Each listed method (default the fast ones: ESZSL, DeViSE, SJE, ALE, ConSE; f-CLSWGAN may be listed too)
trains on the features stage's shards of the **train** classes (held-out classes removed) and the
embeddings stage's class embeddings, with hyper-parameters **fixed in the job config**: there is no
validation split at the sample job's size, so every results file says ``selection: fixed`` and its
``selection_source`` names the values and where they came from. Features are min-max scaled with the
training images' statistics, as for the VAE.

Scoring is the score stage's own :func:`zsl_scale.scoring.score_splits`: the method's class table over
train ∪ every unseen class (:func:`zsl_scale.methods.class_table`), subset per split to its GZSL search
space, and the test images' features mapped to the method's query vectors batch by batch
(:func:`zsl_scale.methods.queries`). Same chunked kernel, same top-1/top-k, same per-class means, one
results JSON per (method, split) in ``<stage>/results`` beside CADA-VAE's in ``score/results``.

Resume: after a method's results are all written, ``done/<method>.json`` lists them; an interrupted stage
re-run with the same config (the runner's *resume*) skips the methods already done.

Memory: the training features are held in memory (900 × 1,280 on the sample job). The full 1K training
set (1.28M images) would need a per-class cap, which this stage does not have yet.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from zsl_scale.core import ConfigError, DataError
from zsl_scale.jobs.registry import StageContext
from zsl_scale.jobs.settings import settings_of


def check_methods(stage: str, methods: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``methods`` (the stage's setting) as name → fixed hyper-parameters, every key of the method's grid present.

    Raises:
        ConfigError: an unknown method, ``cada`` (it has its own stages), a missing, unknown or out-of-range
            hyper-parameter, or a list value (a grid: there is no validation split to search it on).
    """
    from zsl_scale.methods import get_method, hyper_value

    where = f"stage {stage!r}"
    if not isinstance(methods, dict) or not methods:
        raise ConfigError(f"{where} needs 'methods': a mapping of method name → fixed hyper-parameters, "
                          "e.g. {eszsl: {gamma: 100, lam: 0.001}}")
    out: dict[str, dict[str, Any]] = {}
    for name, hyper in methods.items():
        spec = get_method(str(name))
        if spec.make is None:
            raise ConfigError(f"{where}: {spec.display} runs through the train / latents / score stages, "
                              "not the methods stage")
        hyper = dict(hyper or {})
        missing = [k for k in spec.grid if k not in hyper]
        extra = sorted(set(hyper) - set(spec.grid) - set(spec.optional))
        if missing or extra:
            bad = f"needs {missing[0]!r}" if missing else f"has unknown hyper-parameter {extra[0]!r}"
            raise ConfigError(f"{where}: method {spec.name} {bad} (fixed values for: {', '.join(spec.grid)})")
        lists = [k for k, v in hyper.items() if isinstance(v, list | tuple)]
        if lists:
            raise ConfigError(f"{where}: method {spec.name}: {lists[0]!r} must be one value, not a grid "
                              "(no validation split to choose on; fix it in advance)")
        for key, value in hyper.items():
            hyper_value(f"{where}: method {spec.name}", key, value)  # type and range, one line
        out[spec.name] = hyper
    return out


def load_training(feature_dir: Path, train: list[str], label_space: list[str],
                  batch_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Features (float32 ``[n, D]``) and label-space indices of every image of a ``train`` class."""
    from zsl_scale.distributed import open_features
    from zsl_scale.scoring import iter_parquet_batches

    source = open_features(feature_dir, scan_classes=False, require_manifest=True)
    pos = {w: i for i, w in enumerate(label_space)}
    to_space = np.array([pos[w] for w in train], np.int64)
    xs, ys = [], []
    for feats, rows in iter_parquet_batches(source.files, train, batch_rows, skip_outside=True):
        xs.append(feats.copy())
        ys.append(to_space[rows])
    if not xs:
        raise DataError(f"{feature_dir} holds no image of the training classes")
    return np.concatenate(xs), np.concatenate(ys)


def class_embeddings(path: Path, wnids: list[str]) -> np.ndarray:
    """Rows of the embeddings stage's table for ``wnids`` (each class must have one)."""
    from zsl_scale.distributed import load_class_table

    table = load_class_table(path)
    row = {w: i for i, w in enumerate(table.wnids)}
    missing = [w for w in wnids if w not in row]
    if missing:
        raise DataError(f"class {missing[0]} has no embedding in {path} ({len(missing)} missing)")
    return table.vectors[[row[w] for w in wnids]]


def run_methods(ctx: StageContext) -> list[Path]:
    """Train every configured method and score it over each split; returns the results files."""
    import torch

    from zsl_scale.cada import FeatureScaler
    from zsl_scale.core import resolve_device
    from zsl_scale.methods import TrainData, get_method
    from zsl_scale.scoring import ScoreSettings, feature_manifest_hashes, read_classes_json, read_groups

    cfg = settings_of(ctx)
    methods = check_methods(ctx.spec.name, cfg.methods)
    splits_dir = Path(ctx.upstream_of_kind("splits")["out_dir"])
    classes = read_classes_json(splits_dir)
    emb_dir = Path(ctx.upstream_of_kind("embeddings")["out_dir"])
    train = sorted(classes["train"])
    label_space = sorted(set(classes["seen"]).union(*map(set, classes["splits"].values())))
    unseen = sorted(set(label_space) - set(train))
    batch_rows, seed = cfg.batch_rows, cfg.seed
    device = resolve_device(cfg.device)
    x, y = load_training(ctx.path(f"@{cfg.features}/shards"), train, label_space, batch_rows)
    scaler = FeatureScaler.fit(x)
    pos = {w: i for i, w in enumerate(label_space)}
    data = TrainData(torch.from_numpy(scaler.transform(x)).to(device), torch.from_numpy(y).to(device),
                     torch.from_numpy(class_embeddings(emb_dir / "embeddings.parquet", label_space)).to(device),
                     unseen=np.array([pos[w] for w in unseen], np.int64))
    test_dir = ctx.path(cfg.test_features + "/shards")
    base = {"dataset": cfg.dataset or ctx.job.name, "top_k": cfg.top_k, "seed": seed,
            "batch_rows": batch_rows, "device": cfg.device, "notes": cfg.notes}
    for key in ("splits", "max_test_per_class", "allow_pretraining_overlap"):  # the score stage's own keys
        if getattr(cfg, key):
            base[key] = getattr(cfg, key)
    common = _common_inputs(ctx, classes, splits_dir, test_dir, read_groups(emb_dir / "groups.tsv"),
                            feature_manifest_hashes(list(ctx.upstream.values())))
    written: list[Path] = []
    for name, hyper in methods.items():
        spec = get_method(name)
        settings = ScoreSettings.from_config({**base, "method": spec.display}, ctx.job.name, f"stage {ctx.spec.name!r}")
        written += _run_one(ctx, spec, hyper, data, scaler, label_space, common, settings, seed)
    return written


def _common_inputs(ctx: StageContext, classes: dict[str, Any], splits_dir: Path, test_dir: Path,
                   groups: dict[str, str], manifests: dict[str, str]) -> dict[str, Any]:
    """The :class:`zsl_scale.scoring.ScoreInputs` fields every method shares."""
    from zsl_scale.distributed import open_features
    from zsl_scale.results import job_chain_sha256
    from zsl_scale.scoring import split_manifest_hashes

    queries = open_features(test_dir, scan_classes=False, require_manifest=True).files
    return {"classes": classes, "query_shards": queries,
            "groups": groups, "config": ctx.chain_config(),
            "manifests": {**manifests, "job": job_chain_sha256(ctx.upstream)},
            "split_manifests": split_manifest_hashes(splits_dir, classes["splits"]), "query_column": "feature"}


def _run_one(ctx: StageContext, spec: Any, hyper: dict[str, Any], data: Any, scaler: Any, label_space: list[str],
             common: dict[str, Any], settings: Any, seed: int) -> list[Path]:
    """Train one method (or reuse its finished results on resume) and score every split."""
    import torch

    from zsl_scale.core import torch_threads
    from zsl_scale.methods import class_table, queries
    from zsl_scale.scoring import ScoreInputs, score_splits

    finished = ctx.finished_part(spec.name)
    if finished is not None:
        return finished
    t0, c0 = time.perf_counter(), time.process_time()
    with torch_threads(spec.threads):
        say = lambda m: ctx.log(f"[{spec.display}] {m}")  # noqa: E731
        fitted = spec.make(replace(data, state_dir=ctx.out_dir / "state" / spec.name, log=say), seed).fit(hyper)
        table = class_table(fitted, np.arange(len(label_space)), label_space)
        stats = scaler.torch_stats(data.device)

        def query_map(feats: np.ndarray) -> np.ndarray:
            return queries(fitted, scaler.transform_torch(torch.from_numpy(feats).to(data.device), stats))

        train_s, train_cpu = time.perf_counter() - t0, time.process_time() - c0
        source = settings_of(ctx).source or "no validation split at this size"
        inputs = ScoreInputs(
            classifier=table, classifier_epochs=hyper.get("epochs"), query_map=query_map,
            selection_source=f"hyper-parameters fixed in the job config ({_fmt(hyper)}): {source}",
            extra={"method_name": spec.name, "hyper": hyper, "train_images": int(data.x.shape[0]),
                   "train_classes": len(data.seen), "train_seconds": round(train_s, 2),
                   "train_cpu_seconds": round(train_cpu, 2)},
            provenance={"method_plugin": dict(spec.origin)} if spec.origin else {}, **common)
        files = score_splits(inputs, settings, ctx.out_dir / "results")
    ctx.mark_part(spec.name, files, time.perf_counter() - t0)
    return files


def _fmt(hyper: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in hyper.items())
