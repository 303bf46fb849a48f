"""ImageNet-21K zero-shot splits (Xian et al. 2018), built reproducibly from WordNet and class counts.

Every split is a set of ImageNet-21K (fall 2011) classes outside the 1K ILSVRC-2012 classes:

* ``All``: every such class (20,842).
* ``2H`` / ``3H``: classes within 2 / 3 hops of a 1K class in the is-a hierarchy. What a "hop" is
  was never published with code; :class:`HopDefinition` makes the choice explicit (see
  ``docs/splits.md`` for the sizes of every variant and why the default was chosen).
* ``M500/M1K/M5K`` / ``L500/L1K/L5K``: the most / least populated classes, from a (wnid, count)
  table. Ties are broken by wnid (ascending) so that a table gives exactly one split.

A second, reference set holds Xian et al.'s own nine lists, named ``xian2018/<split>``
(:mod:`zsl_scale.imagenet.xian`): copied unchanged, pinned by sha256, never recomputed.

On disk (docs/design.md §2, one directory per split so that splits built at different times, e.g. M/L once a
count table exists, never rewrite each other's manifest)::

    <root>/<set>/<split>/<split>.txt      one wnid per line, sorted (<set>: imagenet21k or xian2018)
    <root>/<set>/<split>/manifest.json    definition, parameters, sizes, sources, sha256s

Builds are deterministic (no dates or paths in manifests), so a rebuild is byte-identical and
``validate`` (:mod:`zsl_scale.imagenet.checks`) can compare hashes. All inputs are checked before
anything is written, and every file is written atomically, so bad input never leaves a partial
split behind.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from zsl_scale.core import (
    PACKAGE_ROOT,
    DataError,
    atomic_write_json,
    atomic_write_text,
    sha256_bytes,
    sha256_file,
)
from zsl_scale.imagenet.classes import class_list_sha256, imagenet_classes
from zsl_scale.imagenet.counts import read_count_table, select_by_count, validate_counts
from zsl_scale.imagenet.hierarchy import DIRECTIONS, GRAPHS, Hierarchy, load_hierarchy
from zsl_scale.imagenet.universes import DEFAULT_UNIVERSE, Universe, resolve_universe, restrict, universe_id
from zsl_scale.imagenet.xian import XIAN2018, XIAN2018_SPLITS, read_xian_list, xian_definition

__all__ = [
    "ALL_SPLIT_NAMES",
    "COUNT_SPLITS",
    "DATASET",
    "HOP_SPLITS",
    "SPLIT_NAMES",
    "SPLIT_SETS",
    "XIAN_SPLIT_NAMES",
    "HopDefinition",
    "SplitBuild",
    "build_split",
    "build_splits",
    "check_split_name",
    "default_splits_root",
    "imagenet_classes",
    "split_dir",
    "split_set",
    "unseen_candidates",
    "write_split",
]

DATASET = "imagenet21k"
MANIFEST_SCHEMA = 1
HOP_SPLITS: dict[str, int] = {"2H": 2, "3H": 3}
COUNT_SPLITS: dict[str, tuple[Literal["most", "least"], int]] = {
    "M500": ("most", 500),
    "M1K": ("most", 1000),
    "M5K": ("most", 5000),
    "L500": ("least", 500),
    "L1K": ("least", 1000),
    "L5K": ("least", 5000),
}
SPLIT_NAMES: tuple[str, ...] = ("2H", "3H", *COUNT_SPLITS, "All")
STRUCTURAL_SPLITS: tuple[str, ...] = ("2H", "3H", "All")
XIAN_SPLIT_NAMES: tuple[str, ...] = tuple(f"{XIAN2018}/{n}" for n in XIAN2018_SPLITS)
ALL_SPLIT_NAMES: tuple[str, ...] = (*SPLIT_NAMES, *XIAN_SPLIT_NAMES)
SPLIT_SETS: dict[str, tuple[str, ...]] = {DATASET: SPLIT_NAMES, XIAN2018: XIAN_SPLIT_NAMES}


@dataclass(frozen=True)
class HopDefinition:
    """What "within k hops of a 1K class" means (the literature's "tree hops" is ambiguous).

    Attributes:
        graph: ``"fall11"`` (ImageNet's fall-2011 tree: WordNet hypernym edges, eight top categories
            under a root, a misc node; :mod:`zsl_scale.imagenet.fall11`), ``"imagenet"`` (is-a order
            induced on the 21K+1K synsets), ``"wordnet"`` (whole noun graph) or ``"imagenet-edges"``
            (WordNet edges between two ImageNet synsets only).
        direction: ``"tree"`` (up then down), ``"undirected"`` walks or ``"directed"`` (pure
            ancestors / descendants); see :meth:`zsl_scale.imagenet.hierarchy.Hierarchy.within_hops`.
        count: ``"synsets"``: k hops = a path of k synsets including the 1K class (k-1 edges);
            ``"edges"``: k hops = k edges.

    The default (fall11, tree, synsets) gives 2H = 1,548 and 3H = 7,817 classes; restricted to Xian et
    al.'s ``All`` they equal Xian's 2H / 3H except for animal.n.01 and its 42 children (docs/splits.md).
    """

    graph: str = "fall11"
    direction: str = "tree"
    count: str = "synsets"

    def __post_init__(self) -> None:
        for key, value, allowed in (
            ("graph", self.graph, GRAPHS),
            ("direction", self.direction, DIRECTIONS),
            ("count", self.count, ("synsets", "edges")),
        ):
            if value not in allowed:
                raise DataError(f"unknown hop {key} {value!r}; use one of {', '.join(allowed)}")

    def describe(self) -> str:
        """One-line human description (goes into the manifest's ``definition``)."""
        unit = "synsets on the path, the 1K class included" if self.count == "synsets" else "edges"
        return f"hops counted as {unit}; {self.direction} walks on the {self.graph} is-a graph"

    def edges(self, hops: int) -> int:
        """Largest number of is-a edges for ``hops`` hops."""
        return hops - 1 if self.count == "synsets" else hops


@dataclass
class SplitBuild:
    """A built split in memory, before it is written."""

    name: str
    wnids: list[str]
    definition: str
    parameters: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    restriction: dict[str, Any] | None = None  # a split restricted to a universe: what was kept and dropped


def default_splits_root() -> Path:
    """Splits root: ``$ZSL_SCALE_SPLITS``, else ``<checkout>/splits`` in a source checkout (where the
    built splits are committed), else ``./splits`` (an installed package has no checkout)."""
    env = os.environ.get("ZSL_SCALE_SPLITS")
    if env:
        return Path(env)
    checkout = PACKAGE_ROOT.parent
    return checkout / "splits" if (checkout / "pyproject.toml").is_file() else Path.cwd() / "splits"


def check_split_name(name: str) -> str:
    """Return the canonical form of ``name`` if it is a known split, else raise DataError ("did you mean").

    Our own splits have bare names (``2H``, ``M500``, ``All``); Xian et al.'s are ``xian2018/<name>``. Either
    may name a universe after ``@`` (``2H@in12k``, ``xian2018/2H@counts:table.tsv``): the split restricted to
    it (:mod:`zsl_scale.imagenet.universes`). A user copy's source is replaced by its id; ``@fall11`` is the
    split itself.
    """
    base, sep, universe = name.partition("@")
    if sep:
        uid = universe_id(universe)
        base = check_split_name(base)
        return base if uid == DEFAULT_UNIVERSE else f"{base}@{uid}"
    if name in ALL_SPLIT_NAMES:
        return name
    lookup = {n.lower(): n for n in ALL_SPLIT_NAMES}
    key = name.lower()
    if key in lookup:
        close = [lookup[key]]  # names are case-sensitive on disk: suggest the exact spelling
    else:
        close = [lookup[c] for c in difflib.get_close_matches(key, list(lookup), n=2, cutoff=0.5)]
        short = key.rsplit("/", 1)[-1]
        if "/" in key and f"{XIAN2018}/{short}" in lookup and lookup[f"{XIAN2018}/{short}"] not in close:
            close.insert(0, lookup[f"{XIAN2018}/{short}"])  # "xian/M500", "Xian2018/m500"
    hint = f" (did you mean {' or '.join(close[:2])}?)" if close else ""
    raise DataError(f"unknown split {name!r}{hint}; known splits: {', '.join(SPLIT_NAMES)} and "
                    f"{XIAN2018}/<{'|'.join(XIAN2018_SPLITS)}>, each optionally @<universe>")


def split_universe(name: str) -> str:
    """The universe id of a split name (``2H@in12k -> in12k``; ``fall11`` for an unrestricted split)."""
    return check_split_name(name).partition("@")[2] or DEFAULT_UNIVERSE


def split_set(name: str) -> tuple[str, str]:
    """``(set, split)`` of a split name: ``"2H" -> ("imagenet21k", "2H")``,
    ``"xian2018/M500" -> ("xian2018", "M500")``, ``"xian2018/2H@in12k" -> ("xian2018@in12k", "2H")``."""
    base, sep, uid = check_split_name(name).partition("@")
    dataset, short = (XIAN2018, base.split("/", 1)[1]) if "/" in base else (DATASET, base)
    return (f"{dataset}@{uid}" if sep else dataset), short


def split_dir(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """Directory of split ``name`` under ``root``: ``<root>/<set>/<split>``."""
    dataset, short = split_set(name)
    return Path(root or default_splits_root()) / dataset / short


def unseen_candidates() -> list[str]:
    """The 20,842 ImageNet-21K classes outside the 1K: the universe every split is drawn from."""
    seen = set(imagenet_classes("1k"))
    return [w for w in imagenet_classes("21k") if w not in seen]


def build_split(
    name: str,
    hierarchy: Hierarchy | None = None,
    counts: dict[str, int] | None = None,
    hops: HopDefinition | None = None,
    xian_source: str | os.PathLike[str] | None = None,
    universe: Universe | None = None,
) -> SplitBuild:
    """Compute one split in memory (nothing is written).

    Args:
        name: A split name from :data:`SPLIT_NAMES`.
        hierarchy: The WordNet graph (loaded on demand for 2H/3H).
        counts: Validated (wnid, image count) table; required for M*/L* splits.
        hops: Hop definition for 2H/3H (default :class:`HopDefinition`).
        xian_source: Folder of Xian et al.'s lists (default: the committed ones, else the shared data).
        universe: The loaded universe of a ``NAME@<id>`` whose id alone cannot be loaded (a user's copy).

    Raises:
        DataError: unknown name, a count split without a count table, a Xian list not found or altered, a
            universe that keeps none of the split's classes.
    """
    name = check_split_name(name)
    if "@" in name:
        return _restricted(name, hierarchy, counts, hops, xian_source, universe)
    dataset, short = split_set(name)
    if dataset == XIAN2018:
        wnids, source = read_xian_list(short, xian_source)
        return SplitBuild(name, wnids, xian_definition(short), {}, {"source": source})
    candidates = unseen_candidates()
    base_inputs = {"seen": _list_info("1k"), "class_list": _list_info("21k")}
    if name == "All":
        return SplitBuild(name, candidates, "every ImageNet-21K class not in the 1K", {}, base_inputs)
    if name in HOP_SPLITS:
        hops = hops or HopDefinition()
        hier = hierarchy or load_hierarchy()
        seen = set(imagenet_classes("1k"))
        k = HOP_SPLITS[name]
        reach = hier.within_hops(seen, hops.edges(k), hops.direction, seen | set(candidates), hops.graph)
        definition = f"ImageNet-21K classes not in the 1K within {k} hops of a 1K class ({hops.describe()})"
        params = {"hops": k, "max_edges": hops.edges(k), **asdict(hops)}
        edges = "hypernym" if hops.graph == "fall11" else "hypernym + instance_hypernym"
        inputs = {**base_inputs, "wordnet": {"version": hier.version, "edges": edges}}
        return SplitBuild(name, sorted(reach.intersection(candidates)), definition, params, inputs)
    if counts is None:
        raise DataError(f"split {name} needs a per-class image count table (--counts FILE with wnid,count)")
    order, n = COUNT_SPLITS[name]
    wnids = select_by_count(counts, candidates, n, most=order == "most")
    definition = f"the {n} {order} populated ImageNet-21K classes not in the 1K (classes with count > 0)"
    params = {"order": order, "n": n, "tie_break": "wnid ascending", "min_count": 1}
    return SplitBuild(name, wnids, definition, params, dict(base_inputs))


def _restricted(name: str, hierarchy: Hierarchy | None, counts: dict[str, int] | None, hops: HopDefinition | None,
                xian_source: str | os.PathLike[str] | None, universe: Universe | None) -> SplitBuild:
    """``NAME@U``: the source split built as usual, then intersected with the universe (seen side too)."""
    base_name, _, uid = name.partition("@")
    base = build_split(base_name, hierarchy, counts, hops, xian_source)
    uni = universe or resolve_universe(uid)
    kept, record = restrict(base.wnids, uni)
    # an empty result is written too (its manifest says so; scoring refuses it): a release may lack a whole split
    text = split_text(base.wnids)
    source = {"split": base_name, "definition": base.definition, "num_classes": len(base.wnids),
              "sha256": sha256_bytes(text.encode())}
    definition = f"{base.definition}; restricted to universe {uid} ({uni.info['description']})"
    return SplitBuild(name, kept, definition, {**base.parameters, "universe": uid},
                      dict(base.inputs), {"source_split": source, **record})


def _list_info(which: str) -> dict[str, Any]:
    return {"file": f"zsl_scale/data/imagenet/{_LIST_FILES[which]}", "sha256": class_list_sha256(which),
            "num_classes": len(imagenet_classes(which))}  # type: ignore[arg-type]


_LIST_FILES = {"1k": "imagenet1k_wnids.txt", "21k": "imagenet21k_wnids.txt"}


def split_text(wnids: Sequence[str]) -> str:
    """Canonical file content: sorted wnids, one per line, final newline."""
    return "".join(f"{w}\n" for w in sorted(wnids))


def manifest_for(build: SplitBuild, text: str) -> dict[str, Any]:
    """The manifest of a built split (deterministic: no dates, paths or versions of tools)."""
    seen = set(imagenet_classes("1k"))
    if seen.intersection(build.wnids):
        raise AssertionError(f"split {build.name} overlaps the 1K")  # a bug, never bad input
    dataset, short = split_set(build.name)
    return {
        "schema_version": MANIFEST_SCHEMA,
        "dataset": dataset,
        "split": short,
        "definition": build.definition,
        "parameters": build.parameters,
        "inputs": build.inputs,
        "num_classes": len(build.wnids),
        **({"restriction": build.restriction} if build.restriction is not None else {}),
        "files": {f"{short}.txt": {"sha256": sha256_bytes(text.encode()), "rows": len(build.wnids)}},
    }


def write_split(build: SplitBuild, root: str | os.PathLike[str] | None = None) -> Path:
    """Write one built split (list first, then manifest; each atomically). Returns its directory."""
    out = split_dir(build.name, root)
    text = split_text(build.wnids)
    manifest = manifest_for(build, text)
    atomic_write_text(out / f"{out.name}.txt", text)
    atomic_write_json(out / "manifest.json", manifest)
    return out


def build_splits(
    names: Iterable[str] = STRUCTURAL_SPLITS,
    root: str | os.PathLike[str] | None = None,
    counts_path: str | os.PathLike[str] | None = None,
    hops: HopDefinition | None = None,
    hierarchy: Hierarchy | None = None,
    wordnet: str | os.PathLike[str] | None = None,
    xian_source: str | os.PathLike[str] | None = None,
    universe: str | None = None,
) -> list[Path]:
    """Build and write splits; every input is checked and every split computed before any write.

    ``wordnet`` is an explicit WordNet location, used only if ``hierarchy`` is not given; ``xian_source``
    a folder of Xian et al.'s lists (``xian2018/<split>`` names are copied from it after a sha256 check).
    ``universe`` restricts every name without its own ``@<universe>`` (``splits/<set>@<id>/``).

    Raises:
        DataError: unknown split name or universe, bad count table, WordNet missing. Nothing is written then.
    """
    resolved: dict[str, Universe] = {}
    canon = []
    for n in names:
        base, sep, spec = n.partition("@")
        spec = spec if sep else (universe or "")
        if ":" in spec:  # a user copy: read it once, name the split by its id
            uni = resolve_universe(spec)
            resolved[uni.id], spec = uni, uni.id
        canon.append(check_split_name(f"{base}@{spec}" if spec else base))
    names = canon
    counts: dict[str, int] | None = None
    if counts_path is not None:
        counts = read_count_table(counts_path)
        validate_counts(counts, unseen_candidates(), set(imagenet_classes("all")))
    hier = hierarchy
    if hier is None and any(n.partition("@")[0] in HOP_SPLITS for n in names):
        hier = load_hierarchy(wordnet)
    builds = [build_split(n, hier, counts, hops, xian_source, resolved.get(n.partition("@")[2])) for n in names]
    if counts_path is not None:
        table = {"sha256": sha256_file(counts_path), "rows": len(counts or {})}
        for b in builds:
            if b.name.partition("@")[0] in COUNT_SPLITS:
                b.inputs["count_table"] = table
    return [write_split(b, root) for b in builds]
