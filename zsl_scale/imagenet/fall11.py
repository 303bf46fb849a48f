"""ImageNet's fall-2011 hierarchy rebuilt from WordNet 3.0: the graph the published 2-hop / 3-hop lists use.

ImageNet fall 2011 shipped its own is-a tree (``structure_released.xml``): WordNet's noun *hypernym*
tree (no instance-hypernym edges) under a root with nine children, the eight ImageNet top categories
below and one "misc" node that is the direct parent of every ImageNet synset with no hypernym path to
those eight (food, drinks, signs, …). The xml is not available offline, but it is determined by
WordNet 3.0 and the ImageNet class list, so it is rebuilt here:

* every WordNet hypernym edge (child -> parent), except that each top category's own hypernyms are
  replaced by the root (``animal`` is no longer under ``organism``);
* the misc node under the root, and added as a parent of every ImageNet synset without a hypernym
  path to a top category (such a synset keeps its WordNet hypernyms as well: ``potpie`` stays under
  ``dish``, which is how the published lists reach from the 1K's foods to their siblings).

Keeping only hypernym edges whose two ends are both misc ImageNet synsets gives the same 2H / 3H
(measured; docs/splits.md), so the choice between the two readings does not matter for the splits.

The root and misc node are two extra node ids after the WordNet synsets (``n`` and ``n + 1``); they are
never ImageNet classes, so callers drop ids ``>= n``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

__all__ = ["FALL11_TOPS", "Fall11Graph", "fall11_graph", "tree_distances", "tree_path"]

FALL11_TOPS: dict[str, str] = {
    "n00007846": "person",
    "n00015388": "animal",
    "n00017222": "plant",
    "n00019128": "natural object",
    "n00021939": "artifact",
    "n00523513": "sport",
    "n09287968": "geological formation",
    "n12992868": "fungus",
}


class _Graph(Protocol):
    wnids: list[str]

    def index(self, wnid: str) -> int: ...

    def __len__(self) -> int: ...


class Fall11Graph:
    """Parent / child lists of the fall-2011 tree over WordNet row ids plus ``root`` and ``misc``.

    Args:
        hier: The WordNet graph (:class:`zsl_scale.imagenet.hierarchy.Hierarchy`).
        hypernym_parents: Per row, the WordNet hypernym parents (instance hypernyms excluded).
        imagenet: The ImageNet synsets (21K ∪ 1K); those outside the eight tops go under misc.
    """

    def __init__(self, hier: _Graph, hypernym_parents: Sequence[Sequence[int]], imagenet: Iterable[str]):
        n = len(hier)
        self.root, self.misc = n, n + 1
        tops = [hier.index(w) for w in FALL11_TOPS]
        parents: list[list[int]] = [list(p) for p in hypernym_parents] + [[], [self.root]]
        for t in tops:
            parents[t] = [self.root]
        under = _below(tops, hypernym_parents, n)
        self.misc_rows = sorted(i for i in {hier.index(w) for w in imagenet} if i not in under)
        for i in self.misc_rows:
            parents[i] = [self.misc, *parents[i]]
        children: list[list[int]] = [[] for _ in range(n + 2)]
        for i, ps in enumerate(parents):
            for p in ps:
                children[p].append(i)
        self.parents, self.children = parents, children


def _below(tops: list[int], hypernym_parents: Sequence[Sequence[int]], n: int) -> set[int]:
    """Rows with a hypernym path to a top (the tops included)."""
    children: list[list[int]] = [[] for _ in range(n)]
    for i, ps in enumerate(hypernym_parents):
        for p in ps:
            children[p].append(i)
    seen = set(tops)
    stack = list(tops)
    while stack:
        for c in children[stack.pop()]:
            if c not in seen:
                seen.add(c)
                stack.append(c)
    return seen


def fall11_graph(hier: _Graph, hypernym_parents: Sequence[Sequence[int]], imagenet: Iterable[str]) -> Fall11Graph:
    """Build the fall-2011 tree (about 0.3 s); see :class:`Fall11Graph`."""
    return Fall11Graph(hier, hypernym_parents, imagenet)


def tree_distances(tree: Fall11Graph, start: int, max_edges: int) -> dict[int, int]:
    """Tree-walk distance (up a edges, then down b, a + b <= ``max_edges``) from row ``start`` to every
    row within reach; the shortest walk counts."""
    up = {start: 0}
    frontier = [start]
    for d in range(1, max_edges + 1):
        frontier = [p for i in frontier for p in tree.parents[i] if p not in up]
        for p in frontier:
            up.setdefault(p, d)
    dist = dict(up)
    frontier = sorted(up, key=up.__getitem__)
    for node in frontier:  # down from every ancestor, within the remaining budget
        stack = [(node, up[node])]
        while stack:
            i, d = stack.pop()
            if d >= max_edges:
                continue
            for c in tree.children[i]:
                if dist.get(c, max_edges + 1) > d + 1:
                    dist[c] = d + 1
                    stack.append((c, d + 1))
    return dist


def tree_path(tree: Fall11Graph, row: int) -> list[int]:
    """One root-to-``row`` path of the tree (at each step the smallest parent row, for determinism)."""
    path = [row]
    while tree.parents[path[-1]]:
        path.append(min(tree.parents[path[-1]]))
    return path[::-1]
