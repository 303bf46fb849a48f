"""``zsl-scale imagenet evaluate``: results JSONs per ImageNet split, from a job folder or explicit paths.

Scoring itself is the score stage's (:func:`zsl_scale.scoring.imagenet.score_splits`); this module only
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
from pathlib import Path
from typing import Any

from zsl_scale.core import DataError
from zsl_scale.scoring import (
    EvalRequest,
    ScoreInputs,
    ScoreSettings,
    check_split_names,
    feature_manifest_hashes,
    from_paths,
    make_inputs,
    read_classes_json,
    read_groups,
    score_splits,
    split_manifest_hashes,
)


def stage_records(run: Path) -> dict[str, dict[str, Any]]:
    """kind → record of the last finished stage of that kind in a job folder (pipeline order)."""
    from zsl_scale.jobs.registry import PIPELINE_ORDER, RECORD

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
    if req.universe:
        classes, config["universe"] = _restrict(classes, req.universe), req.universe
    return make_inputs(classes, classifier, queries, read_groups(groups), config,
                       feature_manifest_hashes(list(records.values())),
                       split_manifest_hashes(splits_dir, classes["splits"]))


def _restrict(classes: dict[str, Any], universe: str) -> dict[str, Any]:
    """The job's classes restricted to a universe (seen, train, held-out and every split ∩ U; splits renamed
    ``NAME@U``); a split the job already restricted keeps its name."""
    from zsl_scale.imagenet import resolve_universe

    uni = resolve_universe(universe)
    keep = uni.wnids

    def cut(wnids: list[str]) -> list[str]:
        return [w for w in wnids if w in keep]

    splits = {(n if "@" in n else f"{n}@{uni.id}"): cut(w) for n, w in classes["splits"].items()}
    return {**classes, "seen": cut(classes["seen"]), "train": cut(classes["train"]),
            "heldout": cut(classes["heldout"]), "splits": splits}


def evaluate_imagenet(req: EvalRequest, settings: ScoreSettings, out: Path) -> list[Path]:
    """Resolve the inputs, then score with the score stage's implementation; returns the results files."""
    check_split_names(req.splits)
    inputs = from_job(req) if req.run is not None else from_paths(req)
    return score_splits(inputs, settings, out)
