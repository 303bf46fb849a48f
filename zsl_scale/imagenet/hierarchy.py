"""The WordNet 3.0 noun hierarchy: wnid <-> synset, the is-a graph, depth, ancestors, LCA, groups.

ImageNet classes are WordNet noun synsets (``n01440764`` = noun offset 1440764 = ``tench.n.01``), and
the 2H/3H zero-shot splits are defined by distances in WordNet's is-a graph, so the splits stage needs
the whole noun graph. nltk reads WordNet, but loading it takes 10-90 s; the graph is therefore
extracted once and cached as a small ``.npz`` under :func:`zsl_scale.core.paths.cache_dir`, keyed by a
fingerprint of the WordNet files, so later loads take well under a second and never touch nltk.

Finding WordNet (``$ZSL_SCALE_WORDNET``, nltk's data, Debian's ``/usr/share/wordnet``) and the
extraction itself live in :mod:`zsl_scale.imagenet.wordnet`; this module is the graph's query API.

The graph has one edge per hypernym *and* instance-hypernym link (child -> parent), like nltk's own
``hypernym_paths``; edges carry their kind. ImageNet's fall-2011 tree (:mod:`zsl_scale.imagenet.fall11`,
the default graph of the 2H/3H splits) uses the hypernym edges only (:meth:`Hierarchy.hypernyms`).

Group of a class = its WordNet lexicographer file (``noun.animal`` -> ``animal``): WordNet's own
partition of nouns into 26 semantic groups, which needs no hand-picked anchor synsets and covers every noun.
"""

from __future__ import annotations

import heapq
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from zsl_scale.core import DataError, atomic_path, cache_dir
from zsl_scale.imagenet import wordnet as _wn
from zsl_scale.imagenet.fall11 import Fall11Graph, fall11_graph
from zsl_scale.imagenet.wordnet import GRAPH_FORMAT, WordNetSource, find_wordnet, unpack_strings

__all__ = ["DIRECTIONS", "GRAPHS", "Hierarchy", "WordNetSource", "find_wordnet", "load_hierarchy", "offset_of",
           "wnid_of"]

Direction = Literal["undirected", "tree", "directed"]
GraphKind = Literal["fall11", "wordnet", "imagenet", "imagenet-edges"]
DIRECTIONS: tuple[str, ...] = ("tree", "undirected", "directed")
GRAPHS: tuple[str, ...] = ("fall11", "wordnet", "imagenet", "imagenet-edges")


def wnid_of(offset: int) -> str:
    """wnid of a noun synset offset: ``1440764 -> "n01440764"``."""
    return f"n{offset:08d}"


def offset_of(wnid: str) -> int:
    """Noun offset of a wnid; raises DataError for anything that is not ``n`` + 8 digits."""
    if len(wnid) != 9 or wnid[0] != "n" or not wnid[1:].isdigit():
        raise DataError(f"not a noun wnid (expected n + 8 digits): {wnid!r}")
    return int(wnid[1:])


class Hierarchy:
    """The WordNet noun is-a graph over wnids, loaded from the cached arrays.

    Args:
        arrays: The arrays written by :func:`zsl_scale.imagenet.wordnet.build_graph_arrays`.
        source: Where WordNet was found (kept for lazy nltk access and provenance).
    """

    def __init__(self, arrays: dict[str, np.ndarray], source: WordNetSource | None = None):
        self.source = source
        self.meta: dict[str, Any] = json.loads(unpack_strings(arrays["meta"])[0])
        self.offsets = arrays["offsets"]
        self.wnids: list[str] = [wnid_of(int(o)) for o in self.offsets]
        self._index = {w: i for i, w in enumerate(self.wnids)}
        self.names: list[str] = unpack_strings(arrays["names"])
        self.lexnames: list[str] = unpack_strings(arrays["lexnames"])
        self.lex = arrays["lex"]
        self.min_depth = arrays["min_depth"]
        self.max_depth_arr = arrays["max_depth"]
        child, parent = arrays["edge_child"], arrays["edge_parent"]
        self.edge_kind = arrays["edge_kind"]
        n = len(self.offsets)
        self._parents: list[list[int]] = [[] for _ in range(n)]
        self._children: list[list[int]] = [[] for _ in range(n)]
        self._hypernym_parents: list[list[int]] = [[] for _ in range(n)]
        for c, p, k in zip(child.tolist(), parent.tolist(), self.edge_kind.tolist(), strict=True):
            self._parents[c].append(p)
            self._children[p].append(c)
            if k == 0:
                self._hypernym_parents[c].append(p)
        self._reader: Any = None
        self._fall11: tuple[frozenset[str], Fall11Graph] | None = None

    @property
    def version(self) -> str:
        """WordNet version reported by nltk when the graph was extracted (``"3.0"``)."""
        return str(self.meta["wordnet_version"])

    def __len__(self) -> int:
        return len(self.wnids)

    def __contains__(self, wnid: object) -> bool:
        return wnid in self._index

    def index(self, wnid: str) -> int:
        """Row of ``wnid`` in the graph arrays; DataError if WordNet has no such noun synset."""
        try:
            return self._index[wnid]
        except KeyError:
            offset_of(wnid)
            raise DataError(f"{wnid} is not a WordNet {self.version} noun synset") from None

    def name(self, wnid: str) -> str:
        """nltk synset name, e.g. ``tench.n.01``."""
        return self.names[self.index(wnid)]

    def parents(self, wnid: str) -> list[str]:
        """Direct hypernyms and instance hypernyms, sorted."""
        return sorted(self.wnids[p] for p in self._parents[self.index(wnid)])

    def hypernyms(self, wnid: str) -> list[str]:
        """Direct hypernyms only (no instance hypernyms), sorted: the parents in ImageNet's fall-2011 tree."""
        return sorted(self.wnids[p] for p in self._hypernym_parents[self.index(wnid)])

    def fall11(self, nodes: Iterable[str]) -> Fall11Graph:
        """ImageNet's fall-2011 tree for the ImageNet synsets ``nodes`` (built once per node set)."""
        key = frozenset(nodes)
        if self._fall11 is None or self._fall11[0] != key:
            self._fall11 = (key, fall11_graph(self, self._hypernym_parents, key))
        return self._fall11[1]

    def children(self, wnid: str) -> list[str]:
        """Direct hyponyms and instance hyponyms, sorted."""
        return sorted(self.wnids[c] for c in self._children[self.index(wnid)])

    def ancestors(self, wnid: str) -> set[str]:
        """Every synset above ``wnid`` (not including it)."""
        return {self.wnids[i] for i in self._closure(self.index(wnid), self._parents)}

    def descendants(self, wnid: str) -> set[str]:
        """Every synset below ``wnid`` (not including it)."""
        return {self.wnids[i] for i in self._closure(self.index(wnid), self._children)}

    def depth(self, wnid: str) -> int:
        """Shortest is-a path length to the root (nltk's ``min_depth``; entity.n.01 has depth 0)."""
        return int(self.min_depth[self.index(wnid)])

    def max_depth(self, wnid: str) -> int:
        """Longest is-a path length to the root (nltk's ``max_depth``)."""
        return int(self.max_depth_arr[self.index(wnid)])

    def hypernym_paths(self, wnid: str) -> list[list[str]]:
        """All root-to-``wnid`` paths, like nltk's ``Synset.hypernym_paths`` (sorted)."""
        i = self.index(wnid)
        if not self._parents[i]:
            return [[wnid]]
        return sorted([*path, wnid] for p in self._parents[i] for path in self.hypernym_paths(self.wnids[p]))

    def lca(self, a: str, b: str) -> str:
        """Lowest common ancestor (each synset counts as its own ancestor).

        "Lowest" = largest ``max_depth``, as in nltk's ``lowest_common_hypernyms``; ties, which WordNet's
        multiple inheritance allows, go to the smallest wnid so the answer is deterministic.
        """
        ia, ib = self.index(a), self.index(b)
        common = (self._closure(ia, self._parents) | {ia}) & (self._closure(ib, self._parents) | {ib})
        best = min(common, key=lambda i: (-int(self.max_depth_arr[i]), self.wnids[i]))
        return self.wnids[best]

    def group_of(self, wnid: str) -> str:
        """Top-level semantic group: the lexicographer file without ``noun.`` (``animal``, ``food`` …)."""
        return self.lexnames[int(self.lex[self.index(wnid)])].removeprefix("noun.")

    def groups(self) -> list[str]:
        """All group names (WordNet's 26 noun lexicographer files), sorted."""
        return sorted({self.lexnames[i].removeprefix("noun.") for i in np.unique(self.lex).tolist()})

    def within_hops(
        self,
        sources: Iterable[str],
        max_edges: int,
        direction: Direction = "undirected",
        nodes: Iterable[str] | None = None,
        graph: GraphKind = "wordnet",
    ) -> set[str]:
        """Synsets at most ``max_edges`` is-a edges away from any source (sources included).

        Args:
            sources: Start synsets (e.g. the 1K classes).
            max_edges: Largest number of edges on the path.
            direction: ``"undirected"``: any walk of up and down steps (co-parents of a shared child
                count as 2 apart); ``"tree"``: up steps then down steps, i.e. paths through a common
                ancestor, the distance of a tree; ``"directed"``: pure ancestors or pure descendants.
            nodes: Synset set for the ImageNet graphs (required unless ``graph="wordnet"``).
            graph: ``"fall11"``: ImageNet's fall-2011 tree (:mod:`zsl_scale.imagenet.fall11`: hypernym
                edges, eight top categories under a root, a misc node; ``nodes`` = the ImageNet synsets);
                ``"wordnet"``: the whole noun graph, walks may pass through any synset;
                ``"imagenet"``: the is-a order induced on ``nodes`` (each node linked to its nearest
                ancestors within ``nodes``, i.e. the Hasse diagram of the sub-order);
                ``"imagenet-edges"``: only WordNet edges whose two ends are both in ``nodes``.
        """
        parents, children, allowed = self._graph(graph, nodes)
        start = [i for i in (self.index(w) for w in sources) if allowed is None or i in allowed]
        if direction == "undirected":
            both = [p + c for p, c in zip(parents, children, strict=True)]
            reach = set(_bfs(start, both, max_edges))
        elif direction == "directed":
            reach = set(_bfs(start, parents, max_edges)) | set(_bfs(start, children, max_edges))
        elif direction == "tree":
            up = _bfs(start, parents, max_edges)
            reach = set(_bfs_budget(up, children, max_edges))
        else:
            raise DataError(f"unknown hop direction {direction!r}; use one of {', '.join(DIRECTIONS)}")
        return {self.wnids[i] for i in reach if i < len(self)}  # fall11's root and misc are not synsets

    def _graph(
        self, graph: str, nodes: Iterable[str] | None
    ) -> tuple[list[list[int]], list[list[int]], set[int] | None]:
        if graph == "wordnet":
            return self._parents, self._children, None
        if graph not in GRAPHS:
            raise DataError(f"unknown hop graph {graph!r}; use one of {', '.join(GRAPHS)}")
        if nodes is None:
            raise DataError(f"hop graph {graph!r} needs the set of ImageNet synsets")
        if graph == "fall11":
            tree = self.fall11(nodes)
            return tree.parents, tree.children, None
        allowed = {self.index(w) for w in nodes}
        parents: list[list[int]] = [[] for _ in range(len(self))]
        for i in allowed:
            if graph == "imagenet-edges":
                parents[i] = [p for p in self._parents[i] if p in allowed]
            else:
                parents[i] = sorted(self._nearest_in(i, allowed))
        children: list[list[int]] = [[] for _ in range(len(self))]
        for i in sorted(allowed):
            for p in parents[i]:
                children[p].append(i)
        return parents, children, allowed

    def _nearest_in(self, i: int, allowed: set[int]) -> set[int]:
        """Ancestors of ``i`` in ``allowed`` reachable without passing through another allowed synset."""
        out: set[int] = set()
        seen: set[int] = set()
        stack = list(self._parents[i])
        while stack:
            j = stack.pop()
            if j in seen:
                continue
            seen.add(j)
            if j in allowed:
                out.add(j)
            else:
                stack.extend(self._parents[j])
        return out

    def synset(self, wnid: str) -> Any:
        """The nltk ``Synset`` (opens the WordNet reader on first use, 10-30 s)."""
        off = offset_of(wnid)
        if self._reader is None:
            self._reader = _wn.open_wordnet(self.source or _wn.find_wordnet())
        return self._reader.synset_from_pos_and_offset("n", off)

    @staticmethod
    def _closure(start: int, adj: list[list[int]]) -> set[int]:
        seen: set[int] = set()
        stack = list(adj[start])
        while stack:
            i = stack.pop()
            if i not in seen:
                seen.add(i)
                stack.extend(adj[i])
        return seen


def _bfs(start: Iterable[int], adj: list[list[int]], max_edges: int) -> dict[int, int]:
    """Distances (<= ``max_edges``) from the nearest start node along ``adj``."""
    return _bfs_budget(dict.fromkeys(start, 0), adj, max_edges)


def _bfs_budget(start: dict[int, int], adj: list[list[int]], max_edges: int) -> dict[int, int]:
    """Like :func:`_bfs` but start nodes carry a distance already spent (a multi-source Dijkstra)."""
    dist = dict(start)
    heap = [(d, i) for i, d in dist.items()]
    heapq.heapify(heap)
    while heap:
        d, i = heapq.heappop(heap)
        if d > dist[i] or d >= max_edges:
            continue
        for j in adj[i]:
            if dist.get(j, max_edges + 1) > d + 1:
                dist[j] = d + 1
                heapq.heappush(heap, (d + 1, j))
    return dist


_LOADED: dict[tuple[str, str], Hierarchy] = {}


def graph_cache_path(source: WordNetSource) -> Path:
    """Where the extracted graph of ``source`` is cached."""
    return cache_dir() / "wordnet" / f"noun-graph-v{GRAPH_FORMAT}-{source.fingerprint()}.npz"


def load_hierarchy(wordnet: str | os.PathLike[str] | None = None, refresh: bool = False) -> Hierarchy:
    """Load the noun hierarchy: from the cache when present (< 1 s), else via nltk (10-30 s), then cache it.

    Args:
        wordnet: Explicit WordNet location (else ``$ZSL_SCALE_WORDNET`` / nltk data / dict dirs).
        refresh: Re-extract the graph even if cached.

    Raises:
        DataError: WordNet not found or unreadable (the message says how to install it).
    """
    source = _wn.find_wordnet(wordnet)
    path = graph_cache_path(source)
    key = (str(path), str(source.path))
    if not refresh and key in _LOADED:
        return _LOADED[key]
    arrays: dict[str, np.ndarray] | None = None
    if path.is_file() and not refresh:
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError, KeyError):
            arrays = None  # a damaged cache is rebuilt, never trusted
    if arrays is None:
        arrays = _wn.build_graph_arrays(_wn.open_wordnet(source), source.kind)
        with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    hier = Hierarchy(arrays, source)
    _LOADED[key] = hier
    return hier
