"""``zsl-scale evaluate imagenet --predictions FILE --run DIR --splits …``: ImageNet outputs made elsewhere.

The test images are the job's features-stage shards (``image_id`` + ``wnid``: the images the score and
methods stages rank), its classes the splits stage's ``classes.json``. Per split, the images whose class
is in the split's GZSL search space (seen classes, then the split's; :func:`gzsl_search_space`) are scored,
exactly as :func:`zsl_scale.scoring.score_splits` does for a class table: the file's ranking restricted to
that space feeds the scorer's per-class accumulators and :func:`gzsl_metrics` (S, U, H, top-k, per class,
per WordNet group). The file must cover every test image of the requested splits and no other image; a
``scores`` file names exactly the label space of the requested splits (seen ∪ their classes), a ``topk``
file only classes of it (schema and checks: :mod:`zsl_scale.scoring.predictions`).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from zsl_scale.core import ConfigError, DataError
from zsl_scale.results import Metrics, build_record, write_result
from zsl_scale.scoring import (
    ScoreSettings,
    accumulate,
    check_classes,
    check_split_images,
    eval_set,
    feature_manifest_hashes,
    gzsl_metrics,
    gzsl_search_space,
    linear_table,
    match_images,
    ranked,
    read_classes_json,
    read_groups,
    read_predictions,
    split_manifest_hashes,
    trained_on,
)


def test_images(shards: list[Path]) -> tuple[list[str], list[str]]:
    """(image ids, wnids) of every row of the feature shards (only these two columns are read)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids: list[str] = []
    wnids: list[str] = []
    for path in shards:
        try:
            table = pq.read_table(path, columns=["image_id", "wnid"])
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"cannot read image ids and wnids of {path}: {str(exc).splitlines()[0]}") from exc
        ids += [str(i) for i in table.column("image_id").to_pylist()]
        wnids += [str(w) for w in table.column("wnid").to_pylist()]
    return ids, wnids


def score_prediction_file(path: Path, run: Path, settings: ScoreSettings, out: Path) -> list[Path]:
    """Score ``path`` over each of ``settings.splits`` of the job folder ``run``; one results file per split."""
    from zsl_scale.distributed import open_features
    from zsl_scale.jobs.imagenet_eval import stage_records

    records = stage_records(run)
    missing = [k for k in ("splits", "features", "embeddings") if k not in records]
    if missing:
        raise DataError(f"{run} has no finished {missing[0]} stage (needed to score a prediction file)")
    splits_dir = Path(records["splits"]["out_dir"])
    classes = read_classes_json(splits_dir)
    names = settings.splits or sorted(classes["splits"])
    unknown = [n for n in names if n not in classes["splits"]]
    if unknown:
        raise ConfigError(f"split {unknown[0]!r} was not built by the splits stage (built: "
                          f"{', '.join(sorted(classes['splits']))})")
    spaces = {n: gzsl_search_space(classes["seen"], classes["splits"][n]) for n in names}
    universe = sorted(set().union(*map(set, spaces.values())))
    pred = read_predictions(path)
    what = f"splits {', '.join(names)} of {run}"
    check_classes(pred, universe, what)
    ids, wnids = test_images(open_features(Path(records["features"]["out_dir"]) / "shards", scan_classes=False,
                                             require_manifest=True).files)
    keep = [i for i, w in enumerate(wnids) if w in set(universe)]
    others = set(ids) - {ids[i] for i in keep}
    stray = [i for i in pred.image_ids if i in others]
    if stray:
        raise DataError(f"prediction file {path}: image {stray[0]!r} is not in the search space of {what}")
    at = match_images(pred, [ids[i] for i in keep], what)
    if settings.max_test_per_class:
        raise ConfigError("--max-test-per-class is not applied to prediction files (score the subsample there)")
    if classes.get("split_images") != "distractors":  # as score_splits: no split class without a test image
        images = Counter(wnids)
        for name in names:
            check_split_images(name, classes["splits"][name], images)
    backbone = trained_on(Path(records["features"]["out_dir"]) / "shards")
    groups = read_groups(Path(records["embeddings"]["out_dir"]) / "groups.tsv")
    manifests = {**feature_manifest_hashes(list(records.values())), "predictions": pred.sha256}
    split_hashes = split_manifest_hashes(splits_dir, names)
    written = []
    for name, space in spaces.items():
        pos = {w: j for j, w in enumerate(space)}
        mine = np.array([j for j, i in enumerate(keep) if wnids[i] in pos], np.int64)
        labels = np.array([pos[wnids[keep[j]]] for j in mine], np.int64)
        acc = accumulate(ranked(pred, at[mine], space, max(settings.top_k)), labels, len(space), settings.top_k)
        ids_only = linear_table(space, np.zeros((len(space), 1), np.float32))  # class ids for the metrics
        unseen = sorted(set(classes["heldout"]) | set(classes["splits"][name]))
        metrics = gzsl_metrics(acc, ids_only, seen=classes["train"], unseen=unseen, groups=groups)
        config: dict[str, Any] = {"command": "zsl-scale imagenet evaluate --predictions", "run": str(run.resolve()),
                                  "predictions": pred.provenance()}
        rec = build_record(
            dataset=settings.dataset, split=name, method=pred.method if settings.method == "CADA-VAE"
            else settings.method, seed=settings.seed, selection="external",
            selection_source=pred.selection_source(), metrics=Metrics(**metrics), config=config,
            manifests={**manifests, **({f"split:{name}": split_hashes[name]} if name in split_hashes else {})},
            seeds={"score": settings.seed}, device="cpu",
            extra={"search_space": len(space), "images": int(acc.totals.sum()), "seen_classes": len(classes["seen"]),
                   "heldout_classes": len(classes["heldout"]), "split_classes": len(classes["splits"][name]),
                   "predictions": pred.provenance(), "notes": settings.notes,
                   # the backbone is the prediction maker's, not the job's: recorded, not checked
                   "eval_set": eval_set(name, classes, unseen, None, None, f"job features' backbone: {backbone}")})
        written.append(write_result(rec, out))
    return written
