"""Scoring ImageNet splits: test latents × the final classifier → one results JSON per split.

One implementation, three entry points: the job's ``score`` stage (:func:`zsl_scale.jobs.stages.run_score`,
inputs from the upstream stage records), ``zsl-scale imagenet evaluate`` (:mod:`zsl_scale.jobs.imagenet_eval`, inputs
from a job folder or explicit paths) and the job's ``methods`` stage (:mod:`zsl_scale.jobs.imagenet_methods`: each
baseline's class table, with image features mapped to its query vectors on the fly by ``query_map``). All build a
:class:`ScoreInputs` and call :func:`score_splits`, so every method is ranked by the same chunked scorer over the
same search spaces with the same per-class means.

For each split the search space is the GZSL label space of docs/design.md §1 (the seen classes, then the
split's classes; :func:`zsl_scale.scoring.score.gzsl_search_space`). Images whose class is outside that space
are not scored for that split (they belong to other splits). S is the per-class mean top-1 over the
images of the training classes, U over the images of the unseen classes (the split's classes and any
seen classes held out of training); H their harmonic mean. ``per_group`` averages per-class top-1 by
WordNet group.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zsl_scale.core import ConfigError, DataError, load_torch_file, read_text_file, sha256_file, shard_files
from zsl_scale.results import Metrics, build_record, write_result
from zsl_scale.scoring.guards import check_split_images, choose_test_images, class_images, pretraining_check, trained_on
from zsl_scale.scoring.score import (
    ClassTable,
    Scorer,
    calibrated_stacking,
    gzsl_metrics,
    gzsl_search_space,
    iter_parquet_batches,
    linear_table,
    score_stream,
)

ALLOWED = {"dataset", "method", "splits", "top_k", "device", "backend", "batch_rows", "calibrated_stacking",
           "seed", "notes", "max_test_per_class", "allow_pretraining_overlap"}


@dataclass
class ScoreSettings:
    """How to score (the ``score`` stage's config keys; :data:`ALLOWED`)."""

    dataset: str
    method: str = "CADA-VAE"
    splits: list[str] | None = None  # default: every split in ``ScoreInputs.classes``
    top_k: tuple[int, ...] = (1, 5)
    device: str = "auto"
    backend: str = "chunked"
    batch_rows: int = 65536
    calibrated_stacking: float | None = None
    seed: int = 0
    notes: str = ""
    max_test_per_class: int | None = None  # a seeded subsample of the test images, labelled (scoring.guards)
    allow_pretraining_overlap: bool = False  # score splits the backbone was trained on, labelled

    @classmethod
    def from_config(cls, cfg: dict[str, Any], default_dataset: str, where: str) -> ScoreSettings:
        unknown = sorted(set(cfg) - ALLOWED)
        if unknown:
            raise ConfigError(f"{where}: unknown config key {unknown[0]!r}")
        gamma = cfg.get("calibrated_stacking")
        return cls(dataset=cfg.get("dataset", default_dataset), method=cfg.get("method", "CADA-VAE"),
                   splits=list(cfg["splits"]) if cfg.get("splits") else None,
                   top_k=tuple(int(k) for k in cfg.get("top_k", [1, 5])), device=cfg.get("device", "auto"),
                   backend=cfg.get("backend", "chunked"), batch_rows=int(cfg.get("batch_rows", 65536)),
                   calibrated_stacking=None if gamma is None else float(gamma), seed=int(cfg.get("seed", 0)),
                   notes=cfg.get("notes", ""), max_test_per_class=cfg.get("max_test_per_class"),
                   allow_pretraining_overlap=bool(cfg.get("allow_pretraining_overlap", False)))


@dataclass
class ScoreInputs:
    """What scoring reads, however it was found.

    ``classes`` has ``seen`` (the label space's seen part), ``train`` (seen classes the model was trained
    on), ``heldout`` (seen classes held out as unseen) and ``splits`` (name → wnids), as the splits
    stage's ``classes.json``. ``manifests`` (name → sha256) and ``config`` go into every results file;
    ``split_manifests`` adds the split's own manifest hash.

    The queries are the ``query_column`` vectors of ``query_shards``, passed through ``query_map`` when
    one is given: CADA-VAE's μ latents are stored (``latent``, no map), while a baseline maps the image
    features (``feature``) to its query space batch by batch, so nothing per method is written to disk.
    ``selection_source`` (default: the classifier's epochs were set in the config) and ``extra`` go into
    every results file.
    """

    classes: dict[str, Any]
    classifier: ClassTable  # over train ∪ unseen classes; rows in any order
    classifier_epochs: int | None
    query_shards: list[Path]  # parquet with ``query_column`` + ``wnid`` columns
    groups: dict[str, str]  # wnid → WordNet group
    config: dict[str, Any]
    manifests: dict[str, str] = field(default_factory=dict)
    split_manifests: dict[str, str] = field(default_factory=dict)
    query_column: str = "latent"  # μ of the test images; ``feature`` for image features + ``query_map``
    query_map: Callable[[np.ndarray], np.ndarray] | None = None  # [n, D_in] float32 → [n, classifier.dim]
    selection_source: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)  # beside capture(): e.g. a plugin's origin


def load_classifier(path: Path) -> tuple[ClassTable, int | None]:
    """The final classifier (``weight``/``bias``/``wnids``; an older ``state_dict`` layout is read too)."""
    clf = load_torch_file(path, "classifier")
    params = clf.get("state_dict", clf) if isinstance(clf, dict) else {}
    if "wnids" not in clf or "weight" not in params:
        raise DataError(f"{path} is not a zsl-scale classifier (needs 'wnids' and 'weight')")
    bias = params.get("bias")
    table = linear_table(clf["wnids"], params["weight"].numpy(), None if bias is None else bias.numpy())
    return table, clf.get("epochs")


def latent_shards(directory: Path) -> list[Path]:
    """The shards of a complete latents folder, as its manifest lists them (:func:`zsl_scale.core.shard_files`)."""
    if not (directory / "manifest.json").is_file():
        raise DataError(f"no latents manifest.json in {directory} (write test latents with "
                        "`zsl-scale latents generate --features …`)")
    return shard_files(directory, "latents")


def query_dim(shards: list[Path], column: str = "latent") -> int:
    """Width of the query vectors, from the first shard's schema (no rows read)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not shards:
        raise DataError("no query latent shards to score")
    try:
        schema = pq.read_schema(shards[0])
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"cannot read query shard {shards[0]}: {exc}") from exc
    if column not in schema.names:
        raise DataError(f"query shard {shards[0]} has no {column!r} column (columns: {', '.join(schema.names)})")
    ftype = schema.field(column).type
    return ftype.list_size if pa.types.is_fixed_size_list(ftype) else -1


def score_splits(inputs: ScoreInputs, settings: ScoreSettings, results_dir: Path) -> list[Path]:
    """Score every requested split (see the module docstring); returns the results files.

    Every split is checked (known, every class with a classifier row and a test image, the backbone's
    pretraining, query width) before any scoring, so a bad request writes nothing.
    """
    classes, gamma = inputs.classes, settings.calibrated_stacking
    built = {n.partition("@")[0]: n for n in classes["splits"]}  # a bare name means the job's restricted split
    names = [n if n in classes["splits"] else built.get(n, n) for n in settings.splits or sorted(classes["splits"])]
    spaces: dict[str, ClassTable] = {}
    images = class_images(inputs.query_shards)
    distractors = classes.get("split_images") == "distractors"  # U on held-out seen classes (a smoke-size job)
    backbone = trained_on(inputs.query_shards[0].parent) if inputs.query_shards else "unknown"
    labels: dict[str, str] = {}
    for name in names:
        if name not in classes["splits"]:
            raise ConfigError(f"split {name!r} was not built by the splits stage (built: "
                              f"{', '.join(sorted(classes['splits']))})")
        space = gzsl_search_space(classes["seen"], classes["splits"][name])
        spaces[name] = inputs.classifier.subset(space, what=f"search space of split {name}")
        if not distractors:
            check_split_images(name, classes["splits"][name], images)
        labels[name] = pretraining_check(name, classes["splits"][name], backbone, settings.allow_pretraining_overlap)
    _check_query_dim(inputs)
    chosen, chosen_sha = (choose_test_images(inputs.query_shards, settings.max_test_per_class, settings.seed)
                          if settings.max_test_per_class else (None, None))
    method = settings.method + ("+CS" if gamma is not None else "")
    written = []
    for name, table in spaces.items():
        if gamma is not None:
            table = calibrated_stacking(table, classes["train"], gamma)
        with Scorer(table, k=max(settings.top_k), device=settings.device, backend=settings.backend) as scorer:
            batches = iter_parquet_batches(inputs.query_shards, table.class_ids, settings.batch_rows,
                                           feature_column=inputs.query_column, skip_outside=True, keep_ids=chosen)
            if inputs.query_map is not None:
                batches = ((inputs.query_map(q), rows) for q, rows in batches)
            acc = score_stream(scorer, batches, settings.top_k)
        unseen = sorted(set(classes["heldout"]) | set(classes["splits"][name]))
        metrics = gzsl_metrics(acc, table, seen=classes["train"], unseen=unseen, groups=inputs.groups)
        manifests = dict(inputs.manifests)
        if name in inputs.split_manifests:
            manifests[f"split:{name}"] = inputs.split_manifests[name]
        record = build_record(
            dataset=settings.dataset, split=name, method=method, seed=settings.seed,
            # the classifier's epochs (and any stacking γ) come from the job / command config, set in advance
            selection="fixed", selection_source=inputs.selection_source
            or f"classifier epochs ({inputs.classifier_epochs}) set in the config",
            metrics=Metrics(**metrics), config=inputs.config, manifests=manifests,
            seeds={"score": settings.seed}, device=scorer.device, provenance=inputs.provenance,
            extra={"search_space": len(table.class_ids), "images": int(acc.totals.sum()),
                   "seen_classes": len(classes["seen"]), "heldout_classes": len(classes["heldout"]),
                   "split_classes": len(classes["splits"][name]), "backend": settings.backend,
                   "calibrated_stacking_gamma": gamma, "classifier_epochs": inputs.classifier_epochs,
                   "notes": settings.notes, **inputs.extra,
                   "eval_set": eval_set(name, classes, unseen, settings.max_test_per_class, chosen_sha, labels[name])})
        written.append(write_result(record, results_dir))
    return written


def eval_set(name: str, classes: dict[str, Any], unseen: list[str], per_class: int | None, chosen: str | None,
             pretraining: str) -> dict[str, Any]:
    """What a number is over, for the leaderboard's columns: split set, universe, class counts, test subsample,
    pretraining label; results over different class sets are never put in one column."""
    base, _, universe = name.partition("@")
    return {"split_set": base.split("/")[0] if "/" in base else "imagenet21k", "universe": universe or "fall11",
            "seen_classes": len(classes["seen"]), "unseen_classes": len(unseen),
            "split_images": classes.get("split_images", "required"), "test_per_class": per_class,
            "test_images_sha256": chosen, "pretraining": pretraining}


def _check_query_dim(inputs: ScoreInputs) -> None:
    """Stored queries must be as wide as the class table; mapped ones are probed with one zero row."""
    dim = query_dim(inputs.query_shards, inputs.query_column)
    what = f"query {inputs.query_column}s in {inputs.query_shards[0].parent}"
    if inputs.query_map is not None:
        dim = int(inputs.query_map(np.zeros((1, dim), np.float32)).shape[1])
        what = f"mapped {what}"
    if dim != inputs.classifier.dim:
        raise DataError(f"{what} are {dim}-d but the classifier expects dimension {inputs.classifier.dim}")


def job_inputs(splits_dir: Path, lat_dir: Path, groups_path: Path, records: list[dict[str, Any]],
               config: dict[str, Any]) -> ScoreInputs:
    """:class:`ScoreInputs` from a job's splits, latents and embeddings stage folders."""
    classes = read_classes_json(splits_dir)
    return make_inputs(classes, lat_dir / "classifier.pt", lat_dir / "test", read_groups(groups_path), config,
                       feature_manifest_hashes(records), split_manifest_hashes(splits_dir, classes["splits"]))


def make_inputs(classes: dict[str, Any], classifier: Path, queries: Path, groups: dict[str, str],
                config: dict[str, Any], manifests: dict[str, str] | None = None,
                split_manifests: dict[str, str] | None = None) -> ScoreInputs:
    """Load the classifier and list the query shards; their hashes join ``manifests``."""
    empty = [name for name, wnids in classes.get("splits", {}).items() if not wnids]
    if empty:  # scoring it would write a result with no unseen class: U and H undefined
        raise DataError(f"split {empty[0]} has no classes (empty split file?); rebuild it")
    table, epochs = load_classifier(classifier)
    shards = latent_shards(queries)
    hashes = {**(manifests or {}), "latents:test": sha256_file(queries / "manifest.json"),
              "classifier": sha256_file(classifier)}
    return ScoreInputs(classes, table, epochs, shards, groups, config, hashes, dict(split_manifests or {}))


def read_classes_json(splits_dir: Path) -> dict[str, Any]:
    """The splits stage's ``classes.json`` (seen, train, heldout, splits)."""
    path = splits_dir / "classes.json"
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    missing = [k for k in ("seen", "train", "heldout", "splits") if k not in doc]
    if missing:
        raise DataError(f"{path} lacks {missing[0]!r}")
    return doc


def split_manifest_hashes(splits_dir: Path, names: Any) -> dict[str, str]:
    """sha256 of each built split's manifest under a splits stage folder (splits without one are skipped)."""
    from zsl_scale.imagenet import split_dir

    out = {}
    for name in names:
        path = split_dir(name, splits_dir / "splits") / "manifest.json"  # imagenet21k/2H, xian2018/M500
        if path.is_file():
            out[name] = sha256_file(path)
    return out


def feature_manifest_hashes(records: list[dict[str, Any]]) -> dict[str, str]:
    """``features:<stage>`` → sha256 of each features stage's shard manifest."""
    out = {}
    for rec in records:
        path = Path(rec["out_dir"]) / "shards" / "manifest.json"
        if rec["kind"] == "features" and path.is_file():
            out[f"features:{rec['name']}"] = sha256_file(path)
    return out


def read_groups(path: Path) -> dict[str, str]:
    """``wnid<TAB>group`` lines (the embeddings stage's ``groups.tsv``)."""
    if not path.is_file():
        raise DataError(f"WordNet group file not found: {path}")
    out = {}
    for lineno, line in enumerate(read_text_file(path, "groups file").splitlines(), 1):
        if line.strip():
            wnid, sep, group = line.partition("\t")
            if not sep:
                raise DataError(f"{path}:{lineno}: expected 'wnid<TAB>group'")
            out[wnid.strip()] = group.strip()
    return out
