"""Extraction of WordNet's noun is-a graph into flat arrays (the on-disk cache of :mod:`hierarchy`).

Reading WordNet through nltk takes 10-30 s; these arrays load in well under a second. They are plain
numeric/uint8 arrays in an ``.npz`` (no pickle), so a cache file can never execute code.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any

import numpy as np

GRAPH_FORMAT = 1


def build_graph_arrays(reader: Any, source_kind: str) -> dict[str, np.ndarray]:
    """Extract the noun graph from an nltk WordNet reader.

    Rows are noun synsets sorted by offset; edges are (child, parent, kind) with kind 0 = hypernym,
    1 = instance hypernym. Depths are computed here once: min by BFS from the roots (nltk's
    ``min_depth``), max by a longest-path pass in topological order (nltk's ``max_depth``).
    """
    synsets = sorted(reader.all_synsets("n"), key=lambda s: s.offset())
    index = {s.offset(): i for i, s in enumerate(synsets)}
    lexnames = sorted({s.lexname() for s in synsets})
    lex_id = {name: i for i, name in enumerate(lexnames)}
    child: list[int] = []
    parent: list[int] = []
    kind: list[int] = []
    for i, s in enumerate(synsets):
        for k, hypers in enumerate((s.hypernyms(), s.instance_hypernyms())):
            for h in sorted(hypers, key=lambda h: h.offset()):
                child.append(i)
                parent.append(index[h.offset()])
                kind.append(k)
    min_depth, max_depth = _depths(len(synsets), child, parent)
    meta = {"format": GRAPH_FORMAT, "wordnet_version": str(reader.get_version()), "source_kind": source_kind}
    return {
        "offsets": np.array([s.offset() for s in synsets], dtype=np.int64),
        "names": pack_strings([s.name() for s in synsets]),
        "lexnames": pack_strings(lexnames),
        "lex": np.array([lex_id[s.lexname()] for s in synsets], dtype=np.int16),
        "edge_child": np.array(child, dtype=np.int32),
        "edge_parent": np.array(parent, dtype=np.int32),
        "edge_kind": np.array(kind, dtype=np.int8),
        "min_depth": min_depth,
        "max_depth": max_depth,
        "meta": pack_strings([json.dumps(meta, sort_keys=True)]),
    }


def pack_strings(strings: list[str]) -> np.ndarray:
    """Strings as one newline-joined uint8 buffer: loads without pickle, in milliseconds."""
    return np.frombuffer("\n".join(strings).encode(), dtype=np.uint8)


def unpack_strings(buf: np.ndarray) -> list[str]:
    """Inverse of :func:`pack_strings`."""
    return bytes(buf).decode().split("\n")


def _depths(n: int, child: list[int], parent: list[int]) -> tuple[np.ndarray, np.ndarray]:
    parents: list[list[int]] = [[] for _ in range(n)]
    children: list[list[int]] = [[] for _ in range(n)]
    for c, p in zip(child, parent, strict=True):
        parents[c].append(p)
        children[p].append(c)
    min_d = np.zeros(n, dtype=np.int16)
    max_d = np.zeros(n, dtype=np.int16)
    pending = [len(p) for p in parents]
    queue = deque(i for i in range(n) if not parents[i])
    while queue:  # Kahn's order: a node is popped after all its parents, so its depths are final
        i = queue.popleft()
        for c in children[i]:
            max_d[c] = max(max_d[c], max_d[i] + 1)
            pending[c] -= 1
            if pending[c] == 0:
                min_d[c] = min(int(min_d[p]) for p in parents[c]) + 1
                queue.append(c)
    return min_d, max_d
