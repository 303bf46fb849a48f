"""A job on a small dataset (an xlsa17 split with given class embeddings): the stage runners' data answers.

An ImageNet-style job (:mod:`zsl_scale.jobs.imagenet_data`) builds its label space from WordNet; a small
dataset (Flowers, CUB, …: ``zsl-scale evaluate``'s benchmarks) brings its own: the xlsa17 split
(``train``/``val`` for selection, ``trainval``/``test_seen``/``test_unseen`` for the test phase), one ``att``
vector per class and its images in xlsa17 row order.
A splits stage with a ``benchmark`` key makes the job's adapter (:func:`zsl_scale.jobs.stages.dataset_of`)
a :class:`zsl_scale.jobs.small_data.SmallData` (``classes.json`` then has ``"benchmark"``), and the later
stages read their rows and classes from here:

- **splits** → ``images.tsv`` (the features stage's input: tar members in xlsa17 row order, read in place),
  ``rows.parquet`` (image_id, xlsa17 row, wnid), ``splits.json`` (split → image ids), ``classes.json``;
- **embeddings** → ``embeddings.parquet`` from the benchmark's ``att`` matrix (no text model);
- **validation** → ``selection.json``: classifier epochs chosen on validation by the reference protocol's
  own :func:`zsl_scale.protocol.validate` (train on ``train``, score held-out seen images and the ``val``
  classes), so the two engines cannot choose epochs differently, and a job needs no epochs fixed in advance;
- **train** → the ``trainval`` images; **latents** → the GZSL (seen ∪ unseen) and ZSL (unseen) classifiers for
  the chosen epochs; **score** → GZSL S / U / H and ZSL (:mod:`zsl_scale.jobs.small_score`); **methods** →
  the baselines chosen on validation (:mod:`zsl_scale.jobs.small_methods`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from zsl_scale.core import ConfigError, DataError, atomic_write_json, atomic_write_parquet, atomic_write_text
from zsl_scale.jobs.registry import StageContext
from zsl_scale.jobs.settings import settings_of

SPLIT_NAMES = ("train", "val", "trainval", "test_seen", "test_unseen")


def _locs(att_path: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    from scipy.io import loadmat

    if not att_path.is_file():
        raise DataError(f"benchmark split file not found: {att_path}")
    mat = loadmat(str(att_path))
    return {s: mat[f"{s}_loc"].ravel().astype(np.int64) - 1 for s in SPLIT_NAMES}, mat["att"].T.astype(np.float32)


def subset_images(images: list, splits: dict[str, np.ndarray], subset: dict[str, Any]) -> list:
    """A seeded class × image subset for short runs (tests): ``classes`` per kind (val, train-only, unseen
    classes, so validation and test phases both exist) and at most ``per_class`` images of each."""
    rng = np.random.default_rng(int(subset.get("seed", 0)))
    labels = np.array([im.label for im in images])
    k, per = int(subset.get("classes", 3)), int(subset.get("per_class", 10))
    val_c = np.unique(labels[splits["val"]])
    train_c = np.setdiff1d(np.unique(labels[splits["train"]]), val_c)
    unseen_c = np.unique(labels[splits["test_unseen"]])
    keep_c = np.concatenate([np.sort(rng.choice(c, size=min(k, len(c)), replace=False)) for c in
                             (val_c, train_c, unseen_c)])
    keep: list[int] = []
    for c in keep_c:
        rows = np.flatnonzero(labels == c)
        keep += np.sort(rng.choice(rows, size=min(per, len(rows)), replace=False)).tolist()
    return [images[r] for r in sorted(keep)]


def build_small_splits(ctx: StageContext) -> list[Path]:
    """The benchmark's images (xlsa17 row order) and split, optionally a seeded subset (``subset``)."""
    from zsl_scale.features import write_image_list, xlsa17_images
    cfg = settings_of(ctx)
    root = ctx.path(cfg.benchmark)
    tar = root / cfg.tar
    prefix = cfg.class_prefix
    images = xlsa17_images(root, tar.name, cfg.member_dir)
    splits, att = _locs(root / cfg.att_splits)
    if max(int(v.max()) for v in splits.values()) >= len(images):
        raise DataError(f"{root}: split rows exceed the {len(images)} listed images")
    kept = subset_images(images, splits, cfg.subset.model_dump()) if cfg.subset else images
    kept_rows = {im.row for im in kept}
    write_image_list(ctx.out_dir / "images.tsv", tar, kept, prefix)
    import pyarrow as pa

    atomic_write_parquet(ctx.out_dir / "rows.parquet", pa.table({
        "image_id": [im.image_id(prefix) for im in kept], "row": pa.array([im.row for im in kept], pa.int32()),
        "wnid": [im.wnid(prefix) for im in kept]}))
    split_ids = {s: [images[r].image_id(prefix) for r in rows.tolist() if r in kept_rows]
                 for s, rows in splits.items()}
    atomic_write_json(ctx.out_dir / "splits.json", split_ids)
    wnid_of = {im.image_id(prefix): im.wnid(prefix) for im in kept}
    cls = {s: sorted({wnid_of[i] for i in ids}) for s, ids in split_ids.items()}
    doc = {"benchmark": cfg.name or root.name, "prefix": prefix, "n_classes": int(att.shape[0]),
           "seen": cls["trainval"], "train": cls["trainval"], "heldout": [], "unseen": cls["test_unseen"],
           "split_classes": cls, "splits": {}, "att_splits": str(root / cfg.att_splits),
           "images": len(kept), "subset": ctx.config.get("subset")}
    atomic_write_json(ctx.out_dir / "classes.json", doc)
    return [ctx.out_dir / n for n in ("images.tsv", "rows.parquet", "splits.json", "classes.json")]


def small_classes(ctx: StageContext) -> dict[str, Any]:
    """``classes.json`` of the small dataset's splits stage."""
    return json.loads((Path(ctx.upstream_of_kind("splits")["out_dir"]) / "classes.json").read_text())


def small_split_ids(ctx: StageContext) -> dict[str, list[str]]:
    """``splits.json``: split name → image ids (features-stage ids, ``<wnid>/<stem>``)."""
    return json.loads((Path(ctx.upstream_of_kind("splits")["out_dir"]) / "splits.json").read_text())


def embed_small_classes(ctx: StageContext) -> list[Path]:
    """Class embeddings from the benchmark's ``att`` matrix (one row per class, label order)."""
    import pyarrow as pa

    from zsl_scale.core import vector_array
    cfg = settings_of(ctx)
    classes = small_classes(ctx)
    path = ctx.path(cfg.att) if cfg.att else Path(classes["att_splits"])
    _, att = _locs(path)
    wnids = [f"{classes['prefix']}_{c + 1:03d}" for c in range(att.shape[0])]
    atomic_write_parquet(ctx.out_dir / "embeddings.parquet",
                         pa.table({"wnid": pa.array(wnids, pa.string()), "embedding": vector_array(att)}))
    atomic_write_text(ctx.out_dir / "groups.tsv", "".join(f"{w}\t{classes['benchmark']}\n" for w in wnids))
    return [ctx.out_dir / "embeddings.parquet", ctx.out_dir / "groups.tsv"]


def load_job_benchmark(ctx: StageContext, features_stage: str = "features"):
    """The job's benchmark (see :func:`job_benchmark`) from the earlier stages of ``ctx``."""
    return job_benchmark(Path(ctx.upstream_of_kind("splits")["out_dir"]), ctx.path(f"@{features_stage}/shards"),
                         Path(ctx.upstream_of_kind("embeddings")["out_dir"]) / "embeddings.parquet")


def job_benchmark(splits_dir: Path, shards: Path, embeddings: Path):
    """A benchmark job's data as a :class:`zsl_scale.datasets.Benchmark`: features from the job's own
    extraction (``shards``), split and embeddings from its splits / embeddings stages. Rows are the kept
    images in xlsa17 row order, so the reference protocol sees exactly what the scale stages see."""
    import pyarrow.parquet as pq

    from zsl_scale.core import shard_files
    from zsl_scale.datasets import Benchmark
    from zsl_scale.distributed import load_class_table

    files = shard_files(shards, "features")
    classes = json.loads((splits_dir / "classes.json").read_text())
    rows = pq.read_table(splits_dir / "rows.parquet").to_pydict()
    feats: dict[str, np.ndarray] = {}
    for f in files:
        t = pq.read_table(f, columns=["image_id", "feature"])
        x = t.column("feature").combine_chunks().flatten().to_numpy(zero_copy_only=False).reshape(len(t), -1)
        feats.update(zip(t.column("image_id").to_pylist(), x, strict=True))
    missing = [i for i in rows["image_id"] if i not in feats]
    if missing:
        raise DataError(f"{shards}: no features for {len(missing)} listed images (first {missing[0]}); "
                        "the features stage skipped them (see its manifest)")
    emb = load_class_table(embeddings)
    pos = {i: n for n, i in enumerate(rows["image_id"])}
    label_of = {w: n for n, w in enumerate(emb.wnids)}
    split_ids = json.loads((splits_dir / "splits.json").read_text())
    return Benchmark(
        name=classes["benchmark"], features=np.stack([feats[i] for i in rows["image_id"]]),
        labels=np.array([label_of[w] for w in rows["wnid"]], np.int64), class_names=list(emb.wnids),
        class_embeddings=np.asarray(emb.vectors, np.float32),
        splits={s: np.array(sorted(pos[i] for i in ids), np.int64) for s, ids in split_ids.items()},
        image_ids=list(rows["image_id"]), info={"source": "job", "features": str(shards)})


def run_config_of(ctx: StageContext) -> Any:
    """The validation stage's resolved :class:`ProtocolConfig` (the protocol settings both engines share)."""
    from zsl_scale.core import ProtocolConfig

    rec = ctx.upstream_of_kind("validation")
    return ProtocolConfig.model_validate(json.loads((Path(rec["out_dir"]) / "run_config.json").read_text()))


def choose_small_epochs(ctx: StageContext) -> list[Path]:
    """Choose the GZSL and ZSL classifier epochs on validation, with the reference protocol's own code."""
    from zsl_scale.core import PACKAGE_DATA, load_config, resolve_device
    from zsl_scale.protocol import validate

    cfg = settings_of(ctx)
    packaged = PACKAGE_DATA / "configs" / f"{cfg.config}.yaml"  # a packaged config name (paper, demo) or a path
    run_cfg = load_config(packaged if packaged.is_file() else ctx.path(cfg.config), list(cfg.set), seed=cfg.seed)
    if run_cfg.classifier.epochs is not None:
        raise ConfigError(f"stage {ctx.spec.name!r}: classifier.epochs is fixed in its config; a validation "
                          "stage chooses it (remove the setting)")
    bench = load_job_benchmark(ctx, cfg.features)
    device = resolve_device(cfg.device)
    chosen = validate(bench, run_cfg, [0], device, log=ctx.log)[0]
    atomic_write_json(ctx.out_dir / "run_config.json", run_cfg.model_dump(mode="json"))
    atomic_write_json(ctx.out_dir / "selection.json", chosen)
    return [ctx.out_dir / "run_config.json", ctx.out_dir / "selection.json"]


def selection_of(ctx: StageContext) -> dict[str, Any]:
    """The validation stage's ``selection.json`` (the chosen GZSL and ZSL classifier epochs)."""
    return json.loads((Path(ctx.upstream_of_kind("validation")["out_dir"]) / "selection.json").read_text())
