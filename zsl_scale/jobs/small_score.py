"""The score stage of a job on a small dataset: GZSL S / U / H and ZSL with the chunked scorer.

A small-dataset job runs the ImageNet stages' engines (Ray Train / spawned DDP, :func:`zsl_scale.distributed.build_bank`
+ :func:`~zsl_scale.distributed.train_classifier`, Ray latents, the chunked :class:`~zsl_scale.scoring.Scorer`;
the stage runners of :mod:`zsl_scale.jobs.stages`, with :class:`zsl_scale.jobs.small.SmallData`'s answers)
on a small dataset's rows, so that their numbers can be checked against the reference path
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
from zsl_scale.jobs.registry import StageContext
from zsl_scale.jobs.settings import settings_of
from zsl_scale.jobs.small import run_config_of, selection_of, small_classes, small_split_ids


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


def score_small(ctx: StageContext) -> list[Path]:
    """GZSL S / U / H (per-class mean top-1 over the seen ∪ unseen space) and ZSL, with the chunked scorer."""
    from zsl_scale.core import resolve_device, shard_files
    from zsl_scale.results import Metrics, build_record, job_chain_sha256, write_result
    from zsl_scale.scoring import gzsl_metrics

    cfg = settings_of(ctx)
    run_cfg, classes, sel = run_config_of(ctx), small_classes(ctx), selection_of(ctx)
    lat = Path(ctx.upstream_of_kind("latents")["out_dir"])
    files = shard_files(lat / "test", "latents")
    device = str(resolve_device(cfg.device))  # "auto" → the device that runs (provenance names it)
    ids = small_split_ids(ctx)
    test_ids = set(ids["test_seen"]) | set(ids["test_unseen"])
    table, acc = _score(lat / "classifier.pt", files, test_ids, device)
    gz = gzsl_metrics(acc, table, classes["seen"], classes["unseen"])
    ztable, zacc = _score(lat / "classifier_zsl.pt", files, test_ids, device)
    zsl = gzsl_metrics(zacc, ztable, [], classes["unseen"])["U"]
    record = build_record(
        dataset=classes["benchmark"], split="xlsa17", method=cfg.method, seed=run_cfg.seed,
        setting="gzsl", selection="validation", selection_source=f"validation stage of job {ctx.job.name}",
        metrics=Metrics(S=gz["S"], U=gz["U"], H=gz["H"], zsl=zsl, per_class=gz["per_class"]),
        config=run_cfg.model_dump(mode="json"), manifests={"job": job_chain_sha256(ctx.upstream)},
        seeds={"vae": run_cfg.seed, "sampling": run_cfg.seed + 1, "classifier": run_cfg.seed + 2},
        device=device, full_provenance=False,
        extra={"engine": "scale", "job": ctx.job.name, "selection": {k: sel[k] for k in ("gzsl_epochs", "zsl_epochs")},
               "images": classes["images"], "subset": classes.get("subset"), "notes": cfg.notes})
    return [write_result(record, ctx.out_dir / "results")]
