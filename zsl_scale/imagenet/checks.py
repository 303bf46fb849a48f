"""Checking built splits: rebuild-and-compare (``validate``), comparison with published lists, and
the 2H/3H sizes under every hop definition.

Kept apart from :mod:`zsl_scale.imagenet.splits` (which builds and reads splits) because these are audit
tools: they only read splits and rebuild them in memory, never write.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zsl_scale.core import DataError, dumps_json, sha256_bytes, sha256_file
from zsl_scale.imagenet.classes import imagenet_classes
from zsl_scale.imagenet.counts import read_count_table, validate_counts
from zsl_scale.imagenet.hierarchy import DIRECTIONS, GRAPHS, Hierarchy, load_hierarchy
from zsl_scale.imagenet.splits import (
    ALL_SPLIT_NAMES,
    COUNT_SPLITS,
    HOP_SPLITS,
    SPLIT_SETS,
    HopDefinition,
    build_split,
    check_split_name,
    default_splits_root,
    manifest_for,
    split_dir,
    split_text,
    unseen_candidates,
)
from zsl_scale.imagenet.stored import load_manifest, load_split
from zsl_scale.imagenet.universes import UNIVERSES, is_universe_id


@dataclass(frozen=True)
class Comparison:
    """Agreement of a built split with a reference list (e.g. a published one).

    ``precision`` = overlap / built size, ``recall`` = overlap / reference size,
    ``jaccard`` = overlap / union size.
    """

    built: int
    reference: int
    overlap: int
    precision: float
    recall: float
    jaccard: float
    only_built: list[str]
    only_reference: list[str]


def compare_lists(built: Iterable[str], reference: Iterable[str]) -> Comparison:
    """Compare two wnid sets (duplicates ignored)."""
    a, b = set(built), set(reference)
    inter, union = len(a & b), len(a | b)
    return Comparison(
        built=len(a),
        reference=len(b),
        overlap=inter,
        precision=inter / len(a) if a else 0.0,
        recall=inter / len(b) if b else 0.0,
        jaccard=inter / union if union else 0.0,
        only_built=sorted(a - b),
        only_reference=sorted(b - a),
    )


@dataclass(frozen=True)
class Validation:
    """Outcome of re-building one split: ``status`` is ``ok``, ``mismatch`` or ``skipped``."""

    name: str
    status: str
    detail: str


def built_split_names(root: str | os.PathLike[str] | None = None) -> list[str]:
    """Names of the splits (of both sets) that have a manifest under ``root``, ours first, then the splits
    restricted to a universe (``<set>@<universe>/`` folders, e.g. ``xian2018/2H@in12k``)."""
    names = list(ALL_SPLIT_NAMES)
    for folder in sorted(Path(root or default_splits_root()).glob("*@*")):
        dataset, _, uid = folder.name.partition("@")
        if dataset in SPLIT_SETS and is_universe_id(uid):
            names += [f"{n}@{uid}" for n in SPLIT_SETS[dataset]]
    return [n for n in names if (split_dir(n, root) / "manifest.json").is_file()]


def validate_splits(
    root: str | os.PathLike[str] | None = None,
    names: Iterable[str] | None = None,
    counts_path: str | os.PathLike[str] | None = None,
    hierarchy: Hierarchy | None = None,
    xian_source: str | os.PathLike[str] | None = None,
) -> list[Validation]:
    """Rebuild splits in memory with their manifest's parameters and compare bytes and hashes.

    Count splits are re-built only when ``counts_path`` is the table they were built from (same
    sha256); otherwise they are reported as ``skipped`` after checking the list against its manifest.
    Xian et al.'s lists are "re-built" by reading the source list and checking its pinned sha256.
    """
    names = [check_split_name(n) for n in names] if names is not None else built_split_names(root)
    if not names:
        raise DataError(f"no built splits under {Path(root or default_splits_root())}")
    counts = None
    counts_sha = None
    if counts_path is not None:
        counts = read_count_table(counts_path)
        validate_counts(counts, unseen_candidates(), set(imagenet_classes("all")))
        counts_sha = sha256_file(counts_path)
    out = []
    for name in names:
        manifest = load_manifest(name, root)
        try:
            load_split(name, root, verify=True)
        except DataError as exc:
            out.append(Validation(name, "mismatch", str(exc)))
            continue
        base, _, uid = name.partition("@")
        if base in COUNT_SPLITS and manifest["inputs"].get("count_table", {}).get("sha256") != counts_sha:
            out.append(Validation(name, "skipped", "list matches manifest; pass --counts <its table> to rebuild"))
            continue
        if uid and uid not in UNIVERSES:
            out.append(Validation(name, "skipped", "list matches manifest; restricted to a user copy's classes "
                                  "(rebuild it with `splits build --universe counts:|features:<its source>`)"))
            continue
        hops = None
        if base in HOP_SPLITS:
            p = manifest["parameters"]
            hops = HopDefinition(graph=p["graph"], direction=p["direction"], count=p["count"])
            hierarchy = hierarchy or load_hierarchy()
        try:
            build = build_split(name, hierarchy, counts, hops, xian_source)
        except DataError as exc:  # a Xian source list that is missing or altered
            out.append(Validation(name, "mismatch", str(exc)))
            continue
        if counts_sha and base in COUNT_SPLITS:
            build.inputs["count_table"] = {"sha256": counts_sha, "rows": len(counts or {})}
        text = split_text(build.wnids)
        fresh = dumps_json(manifest_for(build, text))
        on_disk = (split_dir(name, root) / "manifest.json").read_text(encoding="utf-8")
        if fresh != on_disk:
            diff = compare_lists(build.wnids, load_split(name, root, verify=False))
            out.append(Validation(
                name, "mismatch",
                f"rebuild differs: {diff.built} vs {diff.reference} classes, {len(diff.only_built)} only in "
                f"rebuild, {len(diff.only_reference)} only on disk (or manifest fields differ)",
            ))
        else:
            out.append(Validation(name, "ok", f"{len(build.wnids)} classes, sha256 {sha256_bytes(text.encode())[:12]}"))
    return out


def hop_size_table(hierarchy: Hierarchy, reference: dict[str, set[str]] | None = None) -> list[dict[str, Any]]:
    """2H/3H sizes under every :class:`HopDefinition` (the evidence behind the default).

    With ``reference`` (``"2H"``, ``"3H"`` and ``"All"`` of a published set), each row also gets
    ``<split> J``: the Jaccard index of our list restricted to the reference ``All`` with the
    reference list, so definitions are ranked by agreement with the list itself, not its size.
    """
    seen = set(imagenet_classes("1k"))
    candidates = set(unseen_candidates())
    rows = []
    for graph in GRAPHS:
        for direction in DIRECTIONS:
            for count in ("synsets", "edges"):
                hd = HopDefinition(graph, direction, count)
                row: dict[str, Any] = {"graph": graph, "direction": direction, "count": count}
                for name, k in HOP_SPLITS.items():
                    reach = hierarchy.within_hops(seen, hd.edges(k), direction, seen | candidates, graph)
                    row[name] = len(reach & candidates)
                    if reference is not None:
                        row[f"{name} J"] = compare_lists(reach & reference["All"], reference[name]).jaccard
                rows.append(row)
    return rows
