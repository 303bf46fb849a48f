"""Inputs of ImageNet split scoring named one by one: a classifier, query latents, a split folder.

``zsl-scale imagenet evaluate`` without ``--run`` (a pipeline run by hand, e.g. ``dist train`` →
``dist classifier`` → ``latents generate``); a job folder's inputs are read by
:mod:`zsl_scale.jobs.imagenet_eval`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zsl_scale.core import ConfigError, DataError
from zsl_scale.scoring.imagenet import (
    ScoreInputs,
    make_inputs,
    read_groups,
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
    universe: str | None = None  # restrict every split to it (NAME@U); the seen classes become 1K ∩ U


def check_split_names(names: list[str] | None) -> None:
    from zsl_scale.imagenet import check_split_name

    for name in names or []:
        check_split_name(name)  # unknown split → one line with a "did you mean"


def from_paths(req: EvalRequest) -> ScoreInputs:
    """Inputs named one by one (a pipeline run by hand, e.g. ``dist train`` → ``dist classifier``)."""
    from zsl_scale.imagenet import (
        check_split_name,
        default_splits_root,
        load_split,
        manifest_sha256,
        read_wnid_list,
        split_seen,
        universe_id,
    )

    missing = [opt for opt, value in (("--classifier", req.classifier), ("--queries", req.queries),
                                      ("--splits", req.splits)) if not value]
    if missing:
        raise ConfigError(f"pass --run (a `zsl-scale run` work folder) or {', '.join(missing)}")
    assert req.splits is not None and req.classifier is not None and req.queries is not None
    root = req.split_root or default_splits_root()
    if req.universe:
        req.splits = [n if "@" in n else f"{n}@{universe_id(req.universe)}" for n in req.splits]
    req.splits = [check_split_name(n) for n in req.splits]
    seen_sets = {tuple(split_seen(n, root)) for n in req.splits}
    if req.seen == "1k" and len(seen_sets) > 1:
        raise ConfigError(f"splits {', '.join(req.splits)} restrict the 1K differently (different universes); "
                          "evaluate one universe at a time")
    seen = list(seen_sets.pop()) if req.seen == "1k" else read_wnid_list(req.seen)
    held = set(read_wnid_list(req.heldout)) if req.heldout else set()
    stray = sorted(held - set(seen))
    if stray:
        raise DataError(f"held-out class {stray[0]} is not one of the seen classes")
    classes = {"seen": sorted(set(seen)), "train": sorted(set(seen) - held), "heldout": sorted(held),
               "splits": {name: load_split(name, root) for name in req.splits}}
    groups = read_groups(req.groups) if req.groups else _wordnet_groups(classes, req.wordnet)
    config = {"command": "zsl-scale imagenet evaluate", "classifier": str(req.classifier),
              "queries": str(req.queries), "split_root": str(root), "seen": req.seen,
              "heldout": str(req.heldout) if req.heldout else None, "universe": req.universe}
    return make_inputs(classes, req.classifier, req.queries, groups, config,
                       split_manifests={n: manifest_sha256(n, root) for n in req.splits})


def _wordnet_groups(classes: dict[str, Any], wordnet: str | None) -> dict[str, str]:
    """WordNet group of every class in any search space (classes WordNet lacks get none)."""
    from zsl_scale.imagenet import load_hierarchy

    hier = load_hierarchy(wordnet)
    wnids = set(classes["seen"]).union(*map(set, classes["splits"].values()))
    return {w: hier.group_of(w) for w in sorted(wnids) if w in hier}
