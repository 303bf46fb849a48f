"""Comparing our split set with a whole reference set (Xian et al. 2018), and explaining every residual.

A 3H number is only comparable with the literature's if the 3H is the same list. ``compare_set`` puts
each of our splits next to the reference split of the same name, as built and restricted to the
reference's own ``All`` (Xian et al. dropped 497 classes without a word2vec vector, so only the
restricted comparison can be exact). ``explain`` says why a class differs: its path in ImageNet's
fall-2011 tree and its tree-walk distance to the nearest 1K class.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from zsl_scale.core import DataError
from zsl_scale.imagenet.checks import Comparison, built_split_names, compare_lists
from zsl_scale.imagenet.classes import imagenet_classes
from zsl_scale.imagenet.fall11 import tree_distances, tree_path
from zsl_scale.imagenet.hierarchy import Hierarchy
from zsl_scale.imagenet.splits import SPLIT_SETS, check_split_name, split_set
from zsl_scale.imagenet.stored import load_split

__all__ = ["Residual", "SetRow", "compare_set", "explain"]


@dataclass(frozen=True)
class SetRow:
    """One line of a set comparison: our split (optionally restricted) against a reference split."""

    ours: str
    reference: str
    within: str | None
    comparison: Comparison


def compare_set(
    reference_set: str = "xian2018", root: str | os.PathLike[str] | None = None, within: str = "All"
) -> list[SetRow]:
    """Compare every built split of ours with the reference set's split of the same name.

    Args:
        reference_set: A split set name (``xian2018``).
        root: Splits root holding both sets.
        within: Reference split our lists are also restricted to (``""``: no restricted rows).

    Raises:
        DataError: unknown set, or no split built in both sets.
    """
    if reference_set not in SPLIT_SETS or reference_set == "imagenet21k":
        raise DataError(f"unknown reference split set {reference_set!r}; known: xian2018")
    built = set(built_split_names(root))
    universe = set(load_split(check_split_name(f"{reference_set}/{within}"), root)) if within else None
    rows = []
    for ref in SPLIT_SETS[reference_set]:
        ours = split_set(ref)[1]
        if ref not in built or ours not in built:
            continue
        mine, theirs = load_split(ours, root), load_split(ref, root)
        rows.append(SetRow(ours, ref, None, compare_lists(mine, theirs)))
        if universe is not None and ours != within:
            rows.append(SetRow(ours, ref, f"{reference_set}/{within}",
                               compare_lists(universe.intersection(mine), theirs)))
    if not rows:
        raise DataError(f"no split is built in both our set and {reference_set} under the splits root")
    return rows


@dataclass(frozen=True)
class Residual:
    """Why a class is in one list and not the other."""

    wnid: str
    name: str
    path: list[str]
    nearest_seen: str | None
    distance: int | None


def explain(hier: Hierarchy, wnids: list[str], max_edges: int = 4) -> list[Residual]:
    """Path in the fall-2011 tree and tree-walk distance to the nearest 1K class of each wnid.

    ``distance`` is in edges (k hops = k - 1 edges); ``None`` when no 1K class is within ``max_edges``.
    """
    seen = imagenet_classes("1k")
    tree = hier.fall11(imagenet_classes("all"))
    seen_rows = {hier.index(w) for w in seen}
    names = {tree.root: "<root>", tree.misc: "<misc>"}
    out = []
    for wnid in wnids:
        row = hier.index(wnid)
        dist = tree_distances(tree, row, max_edges)
        hits = sorted((d, hier.wnids[i]) for i, d in dist.items() if i in seen_rows)
        path = [names.get(i) or hier.names[i] for i in tree_path(tree, row)]
        out.append(Residual(wnid, hier.names[row], path, hits[0][1] if hits else None,
                            hits[0][0] if hits else None))
    return out
