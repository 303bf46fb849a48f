"""``zsl-scale imagenet evaluate``: results JSONs per ImageNet split, from a job folder or explicit paths.

Scoring itself is the score stage's (:func:`zsl_scale.score_stage.score_splits`); this module only
finds its inputs, so a job and a hand-run pipeline produce results files the same way.

* ``--run DIR``: the work folder of ``zsl-scale run`` (e.g. ``runs/imagenet-samples``). Its stage
  records (``*/stage.json``) name the splits stage (``classes.json``: seen / train / held-out classes and
  every built split), the latents stage (``test/`` μ latents, ``classifier.pt``) and the embeddings stage
  (``groups.tsv``). Explicit options below override the parts they name.
* Explicit: ``--classifier`` (``classifier.pt`` of ``dist classifier`` or a latents stage), ``--queries``
  (μ latents of the test images from ``zsl-scale latents generate --features``), ``--split-root``
  (``zsl-scale splits build``), ``--seen`` (``1k`` or a wnid list), ``--heldout`` (seen classes held out
  of training, optional) and ``--groups`` (a ``wnid<TAB>group`` file; default: WordNet lexicographer
  groups from the local WordNet).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zsl_scale.errors import ConfigError, DataError
from zsl_scale.score_stage import (
    ScoreInputs,
    ScoreSettings,
    feature_manifest_hashes,
    make_inputs,
    read_classes_json,
    read_groups,
    score_splits,
    split_manifest_hashes,
)


@dataclass
class EvalRequest:
    """The command's options (paths unresolved; ``None`` = take it from ``run`` or the default)."""

    run: Path | None = None
    classifier: Path | None = None
    queries: Path | None = None
    splits: list[str] | None = None
    split_root: Path | None = None
    seen: str = "1k"
    heldout: Path | None = None
    groups: Path | None = None
    wordnet: str | None = None


def stage_records(run: Path) -> dict[str, dict[str, Any]]:
    """kind → record of the last finished stage of that kind in a job folder (pipeline order)."""
    from zsl_scale.jobs import PIPELINE_ORDER, RECORD

    if not run.is_dir():
        raise DataError(f"run folder not found: {run}")
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(run.glob(f"*/{RECORD}")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot read stage record {path}: {exc}") from exc
        rec["out_dir"] = str(path.parent)  # the folder may have moved since it ran
        if rec.get("kind") in PIPELINE_ORDER:
            found[rec["kind"]] = rec
    if not found:
        raise DataError(f"{run} holds no finished job stages (*/stage.json); pass a `zsl-scale run` work "
                        "folder, or --classifier/--queries/--split-root")
    return found


def _need(records: dict[str, dict[str, Any]], kind: str, run: Path) -> Path:
    if kind not in records:
        raise DataError(f"{run} has no finished {kind} stage")
    return Path(records[kind]["out_dir"])


def _check_names(names: list[str] | None) -> None:
    from zsl_scale.splits import check_split_name

    for name in names or []:
        check_split_name(name)  # unknown split → one line with a "did you mean"


def from_job(req: EvalRequest) -> ScoreInputs:
    """Inputs of a job folder; explicit classifier / queries / groups options replace the job's."""
    assert req.run is not None
    records = stage_records(req.run)
    splits_dir = _need(records, "splits", req.run)
    classifier = req.classifier or _need(records, "latents", req.run) / "classifier.pt"
    queries = req.queries or _need(records, "latents", req.run) / "test"
    classes = read_classes_json(splits_dir)
    groups = req.groups or _need(records, "embeddings", req.run) / "groups.tsv"
    stages = {rec["name"]: {"kind": rec["kind"], "config": rec.get("config", {}), "hash": rec["hash"]}
              for rec in records.values()}
    config = {"command": "zsl-scale imagenet evaluate", "run": str(req.run.resolve()), "stages": stages}
    return make_inputs(classes, classifier, queries, read_groups(groups), config,
                       feature_manifest_hashes(list(records.values())),
                       split_manifest_hashes(splits_dir, classes["splits"]))


def from_paths(req: EvalRequest) -> ScoreInputs:
    """Inputs named one by one (a pipeline run by hand, e.g. ``dist train`` → ``dist classifier``)."""
    from zsl_scale.classes import imagenet_classes, read_wnid_list
    from zsl_scale.splits import default_splits_root, load_split, manifest_sha256

    missing = [opt for opt, value in (("--classifier", req.classifier), ("--queries", req.queries),
                                      ("--splits", req.splits)) if not value]
    if missing:
        raise ConfigError(f"pass --run (a `zsl-scale run` work folder) or {', '.join(missing)}")
    assert req.splits is not None and req.classifier is not None and req.queries is not None
    root = req.split_root or default_splits_root()
    seen = list(imagenet_classes("1k")) if req.seen == "1k" else read_wnid_list(req.seen)
    held = set(read_wnid_list(req.heldout)) if req.heldout else set()
    stray = sorted(held - set(seen))
    if stray:
        raise DataError(f"held-out class {stray[0]} is not one of the seen classes")
    classes = {"seen": sorted(set(seen)), "train": sorted(set(seen) - held), "heldout": sorted(held),
               "splits": {name: load_split(name, root) for name in req.splits}}
    groups = read_groups(req.groups) if req.groups else _wordnet_groups(classes, req.wordnet)
    config = {"command": "zsl-scale imagenet evaluate", "classifier": str(req.classifier),
              "queries": str(req.queries), "split_root": str(root), "seen": req.seen,
              "heldout": str(req.heldout) if req.heldout else None}
    return make_inputs(classes, req.classifier, req.queries, groups, config,
                       split_manifests={n: manifest_sha256(n, root) for n in req.splits})


def _wordnet_groups(classes: dict[str, Any], wordnet: str | None) -> dict[str, str]:
    """WordNet group of every class in any search space (classes WordNet lacks get none)."""
    from zsl_scale.hierarchy import load_hierarchy

    hier = load_hierarchy(wordnet)
    wnids = set(classes["seen"]).union(*map(set, classes["splits"].values()))
    return {w: hier.group_of(w) for w in sorted(wnids) if w in hier}


def evaluate_imagenet(req: EvalRequest, settings: ScoreSettings, out: Path) -> list[Path]:
    """Resolve the inputs, then score with the score stage's implementation; returns the results files."""
    _check_names(req.splits)
    inputs = from_job(req) if req.run is not None else from_paths(req)
    return score_splits(inputs, settings, out)
