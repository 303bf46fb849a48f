"""ImageNet's fall-2011 tree rebuilt from WordNet 3.0: tops under a root, the misc node, tree walks."""

from __future__ import annotations

from pathlib import Path

import pytest

from zsl_scale.imagenet import hierarchy as H
from zsl_scale.imagenet.classes import imagenet_classes
from zsl_scale.imagenet.fall11 import FALL11_TOPS, tree_distances, tree_path

POTPIE, DISH, ORGANISM, ANIMAL, EINSTEIN = "n07875152", "n07557434", "n00004475", "n00015388", "n10954498"


@pytest.fixture
def hier(graph_cache: Path, monkeypatch: pytest.MonkeyPatch) -> H.Hierarchy:
    monkeypatch.setenv("ZSL_SCALE_CACHE", str(graph_cache))
    return H.load_hierarchy()


def test_tops_misc_and_hypernym_edges(hier: H.Hierarchy) -> None:
    tree = hier.fall11(imagenet_classes("all"))
    names = {i: hier.wnids[i] for i in range(len(hier))}
    assert sorted(names[c] for c in tree.children[tree.root] if c < len(hier)) == sorted(FALL11_TOPS)
    assert tree.misc in tree.children[tree.root] and tree.parents[hier.index(ANIMAL)] == [tree.root]
    assert len(tree.misc_rows) == 2350  # ImageNet synsets without a hypernym path to a top (foods, signs, …)
    potpie = hier.index(POTPIE)  # a 1K class under misc keeps its WordNet parent dish
    assert tree.parents[potpie] == [tree.misc, hier.index(DISH)]
    assert hier.index(ORGANISM) in tree.misc_rows  # above the tops: organism is not under animal's root
    assert hier.hypernyms(EINSTEIN) == [] and hier.parents(EINSTEIN) != []  # instance edges are not used
    assert tree_path(tree, hier.index("n01314388")) == [tree.root, hier.index(ANIMAL), hier.index("n01314388")]


def test_tree_walks(hier: H.Hierarchy) -> None:
    nodes = imagenet_classes("all")
    two = hier.within_hops([POTPIE], 1, "tree", nodes, graph="fall11")
    assert DISH in two and POTPIE in two
    three = hier.within_hops([POTPIE], 2, "tree", nodes, graph="fall11")
    assert ORGANISM in three  # up to misc, down to any misc synset: the misc node counts as an ancestor
    assert "n07583197" in three  # soup: dish's child
    assert ANIMAL not in three
    dist = tree_distances(hier.fall11(nodes), hier.index(ANIMAL), 3)
    assert dist[hier.index("n01768244")] == 3  # animal > invertebrate > arthropod > trilobite
