"""Jobs on a small benchmark, the scale engine: train (DDP), latents + classifiers, chunked scoring.

These are the ImageNet stages' engines (Ray Train / spawned DDP, :func:`zsl_scale.distributed.build_bank` +
:func:`~zsl_scale.distributed.train_classifier`, Ray latents, the chunked :class:`~zsl_scale.scoring.Scorer`)
fed with a small benchmark's rows, so that their numbers can be checked against the reference path
(``zsl-scale evaluate``) on the same images. What both engines share by construction: the protocol settings
(the validation stage's resolved config: model, VAE schedule, classifier settings, seed), the chosen epochs,
the training rows (``trainval``), the min-max statistics (fit on those rows), the label spaces (GZSL: seen ∪
unseen; ZSL: unseen only, its own classifier) and per-class mean top-1. What differs (random streams, batch
order, the classifier's last partial batch) is listed with measurements in docs/jobs.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zsl_scale.core import load_torch_file
from zsl_scale.jobs.bench import bench_classes, bench_split_ids, run_config_of
from zsl_scale.jobs.registry import StageContext
from zsl_scale.jobs.settings import settings_of
from zsl_scale.jobs.vae_fit import classifier_scale, fit_and_export


def filter_features(src: Path, out: Path, image_ids: set[str]) -> Path:
    """A feature folder holding only ``image_ids`` (one shard at a time, rows kept in shard order)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from zsl_scale.core import atomic_write_parquet

    keep = pa.array(sorted(image_ids), pa.string())
    for path in sorted(src.glob("*.parquet")):
        table = pq.read_table(path)
        atomic_write_parquet(out / path.name, table.filter(pc.is_in(table.column("image_id"), value_set=keep)))
    return out


def run_bench_train(ctx: StageContext) -> list[Path]:
    """Train the CADA-VAE on ``trainval`` with the distributed trainer (``runner``: ray, spawn or local)."""
    cfg = settings_of(ctx)
    run_cfg = run_config_of(ctx)
    src = ctx.path(f"@{cfg.features}/shards")
    feats = filter_features(src, ctx.out_dir / "train_features", set(bench_split_ids(ctx)["trainval"]))
    emb = Path(ctx.upstream_of_kind("embeddings")["out_dir"]) / "embeddings.parquet"
    job = {"seed": run_cfg.seed, "model": run_cfg.model.model_dump(), "train": run_cfg.train.model_dump(),
           "classifier": run_cfg.classifier.model_dump(), "scale": cfg.scale}
    return fit_and_export(ctx, job, feats, emb, cfg.runner)


def run_bench_latents(ctx: StageContext) -> list[Path]:
    """μ of the test images (Ray), then the GZSL (seen ∪ unseen) and ZSL (unseen) classifiers for the
    epochs the validation stage chose."""
    import json

    from zsl_scale.core import resolve_device
    from zsl_scale.distributed import build_bank, fit_classifier, load_class_table, open_features, save_classifier
    from zsl_scale.latents import LatentOptions, generate_latents
    from zsl_scale.method import load_model, scaler_from_extra

    cfg = settings_of(ctx)  # an ``epochs`` key is refused: the validation stage chooses the epochs
    run_cfg = run_config_of(ctx)
    sel = json.loads((Path(ctx.upstream_of_kind("validation")["out_dir"]) / "selection.json").read_text())
    vae_path = Path(ctx.upstream_of_kind("train")["out_dir"]) / "vae.pt"
    classes = bench_classes(ctx)
    seed, dev = run_cfg.seed, resolve_device(cfg.device)
    src = ctx.path(f"@{cfg.features}/shards")
    opts = LatentOptions(seed=seed, device=cfg.device, workers=cfg.workers, encode_batch=cfg.encode_batch)
    # μ of every image (one cheap encoder pass); the score stage keeps the test_seen / test_unseen rows
    generate_latents(vae_path, ctx.out_dir / "test", opts, features=src)
    vae, _ = load_model(vae_path, dev)
    saved = load_torch_file(vae_path, "model checkpoint")["extra"]
    scaler = scaler_from_extra(saved, f"model checkpoint {vae_path}")
    emb = load_class_table(Path(ctx.upstream_of_kind("embeddings")["out_dir"]) / "embeddings.parquet")
    train_src = open_features(saved["train_features"])
    mode = cfg.mode
    outputs = [ctx.out_dir / "test" / "manifest.json"]
    for name, seen, epochs in (("classifier.pt", classes["seen"], sel["gzsl_epochs"]),
                               ("classifier_zsl.pt", [], sel["zsl_epochs"])):
        bank = build_bank(vae, train_src, emb, list(seen), list(classes["unseen"]), run_cfg.classifier, scaler,
                          seed=seed + 1, device=dev)
        linear, history = fit_classifier(bank, run_cfg.classifier, int(epochs), classifier_scale(ctx), ctx.out_dir,
                                         mode=mode, seed=seed + 2, device=dev)
        save_classifier(ctx.out_dir / name, linear, bank.wnids, history, int(epochs))
        outputs.append(ctx.out_dir / name)
    return outputs


def test_batches(latents: list[Path], class_ids: list[str], image_ids: set[str]) -> Any:
    """``(μ [n, L], label rows)`` of the test images among the latent shards (one shard in memory at a time);
    images of classes outside the search space (ZSL: the seen classes) are dropped."""
    import numpy as np
    import pyarrow.parquet as pq

    pos = {c: n for n, c in enumerate(class_ids)}
    for path in latents:
        t = pq.read_table(path, columns=["image_id", "wnid", "latent"]).to_pydict()
        keep = [n for n, (i, w) in enumerate(zip(t["image_id"], t["wnid"], strict=True)) if i in image_ids and w in pos]
        if keep:
            yield (np.asarray([t["latent"][n] for n in keep], np.float32),
                   np.asarray([pos[t["wnid"][n]] for n in keep], np.int64))


def _score(classifier: Path, latents: list[Path], image_ids: set[str], device: str) -> Any:

    from zsl_scale.scoring import Scorer, linear_table, score_stream

    saved = load_torch_file(classifier, "classifier")
    table = linear_table(saved["wnids"], saved["weight"].numpy(), saved["bias"].numpy())
    with Scorer(table, k=1, device=device) as scorer:
        return table, score_stream(scorer, test_batches(latents, list(table.class_ids), image_ids))


def run_bench_score(ctx: StageContext) -> list[Path]:
    """GZSL S / U / H (per-class mean top-1 over the seen ∪ unseen space) and ZSL, with the chunked scorer."""
    import json

    from zsl_scale.core import capture, resolve_device, sha256_json
    from zsl_scale.results import Metrics, ResultRecord, write_result
    from zsl_scale.scoring import gzsl_metrics

    cfg = settings_of(ctx)
    run_cfg, classes = run_config_of(ctx), bench_classes(ctx)
    lat = Path(ctx.upstream_of_kind("latents")["out_dir"])
    sel = json.loads((Path(ctx.upstream_of_kind("validation")["out_dir"]) / "selection.json").read_text())
    files = sorted((lat / "test").glob("*.parquet"))
    device = str(resolve_device(cfg.device))  # "auto" → the device that runs (provenance names it)
    ids = bench_split_ids(ctx)
    test_ids = set(ids["test_seen"]) | set(ids["test_unseen"])
    table, acc = _score(lat / "classifier.pt", files, test_ids, device)
    gz = gzsl_metrics(acc, table, classes["seen"], classes["unseen"])
    ztable, zacc = _score(lat / "classifier_zsl.pt", files, test_ids, device)
    zsl = gzsl_metrics(zacc, ztable, [], classes["unseen"])["U"]
    config = run_cfg.model_dump(mode="json")
    chain = {name: {"kind": rec["kind"], "hash": rec["hash"]} for name, rec in ctx.upstream.items()}
    record = ResultRecord(
        dataset=classes["benchmark"], split="xlsa17", method=cfg.method, seed=run_cfg.seed,
        setting="gzsl", selection="validation", selection_source=f"validation stage of job {ctx.job.name}",
        metrics=Metrics(S=gz["S"], U=gz["U"], H=gz["H"], zsl=zsl, per_class=gz["per_class"]),
        config=config, config_sha256=sha256_json(config), manifests={"job": sha256_json(chain)},
        seeds={"vae": run_cfg.seed, "sampling": run_cfg.seed + 1, "classifier": run_cfg.seed + 2},
        provenance=capture(str(device), full=False),
        extra={"engine": "scale", "job": ctx.job.name, "selection": {k: sel[k] for k in ("gzsl_epochs", "zsl_epochs")},
               "images": classes["images"], "subset": classes.get("subset"), "notes": cfg.notes})
    return [write_result(record, ctx.out_dir / "results")]
