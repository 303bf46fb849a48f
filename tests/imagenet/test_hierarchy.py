"""WordNet hierarchy: graph facts on the real WordNet 3.0, the graph cache and the "no WordNet" error."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from zsl_scale.core.errors import DataError
from zsl_scale.imagenet import hierarchy as H
from zsl_scale.imagenet import wordnet as W

IN_CI = os.environ.get("CI", "").lower() == "true"
TENCH, CYPRINID, GOLDFISH, DOG, CAT = "n01440764", "n01439121", "n01443537", "n02084071", "n02121620"
EINSTEIN, ENTITY, VERTEBRATE, CARNIVORE = "n10954498", "n00001740", "n01471682", "n02075296"


def wordnet_available() -> H.WordNetSource:
    """The real WordNet (Debian packages or nltk data); skip locally, fail in CI when absent."""
    try:
        return H.find_wordnet()
    except DataError as exc:
        if IN_CI:
            pytest.fail(f"WordNet missing in CI: {exc}")
        pytest.skip(f"WordNet 3.0 not installed: {exc}")


@pytest.fixture
def hier(graph_cache: Path, monkeypatch: pytest.MonkeyPatch) -> H.Hierarchy:
    monkeypatch.setenv("ZSL_SCALE_CACHE", str(graph_cache))
    return H.load_hierarchy()


def test_tench_hypernym_path_and_depth(hier: H.Hierarchy) -> None:
    assert hier.version == "3.0"
    assert hier.name(TENCH) == "tench.n.01"
    assert hier.parents(TENCH) == [CYPRINID]
    (path,) = hier.hypernym_paths(TENCH)
    assert [hier.name(w) for w in path] == [
        "entity.n.01", "physical_entity.n.01", "object.n.01", "whole.n.02", "living_thing.n.01",
        "organism.n.01", "animal.n.01", "chordate.n.01", "vertebrate.n.01", "aquatic_vertebrate.n.01",
        "fish.n.01", "bony_fish.n.01", "teleost_fish.n.01", "soft-finned_fish.n.01", "cypriniform_fish.n.01",
        "cyprinid.n.01", "tench.n.01",
    ]
    assert hier.depth(TENCH) == 16 and hier.max_depth(TENCH) == 16
    assert hier.depth(ENTITY) == 0
    assert (hier.depth(DOG), hier.max_depth(DOG)) == (8, 13)  # nltk: min_depth 8, max_depth 13


def test_graph_size_and_instance_hypernyms(hier: H.Hierarchy) -> None:
    assert len(hier) == 82115  # WordNet 3.0 noun synsets
    assert [hier.name(p) for p in hier.parents(EINSTEIN)] == ["physicist.n.01"]  # an instance hypernym
    assert (hier.depth(EINSTEIN), hier.max_depth(EINSTEIN)) == (6, 9)  # as nltk, through the instance link
    assert TENCH in hier.descendants(CYPRINID)
    assert ENTITY in hier.ancestors(TENCH) and TENCH not in hier.ancestors(TENCH)
    assert GOLDFISH in hier.children(CYPRINID)


def test_lca(hier: H.Hierarchy) -> None:
    assert hier.lca(TENCH, DOG) == VERTEBRATE  # nltk lowest_common_hypernyms: vertebrate.n.01
    assert hier.lca(DOG, CAT) == CARNIVORE
    assert hier.lca(TENCH, CYPRINID) == CYPRINID
    assert hier.lca(TENCH, TENCH) == TENCH


def test_groups(hier: H.Hierarchy) -> None:
    assert hier.group_of(TENCH) == "animal"
    assert hier.group_of("n07745940") == "food"  # strawberry
    assert hier.group_of(EINSTEIN) == "person"
    groups = hier.groups()
    assert len(groups) == 26 and {"animal", "plant", "artifact", "food", "person"} <= set(groups)
    with pytest.raises(DataError, match=r"not a WordNet 3\.0 noun synset"):
        hier.group_of("n99999999")
    with pytest.raises(DataError, match="not a noun wnid"):
        hier.index("tench")


def test_within_hops_directions(hier: H.Hierarchy) -> None:
    und = hier.within_hops([TENCH], 2, "undirected")
    assert {TENCH, CYPRINID, GOLDFISH} <= und  # goldfish is a sibling: up one, down one
    assert GOLDFISH in hier.within_hops([TENCH], 2, "tree")
    directed = hier.within_hops([TENCH], 2, "directed")
    assert CYPRINID in directed and GOLDFISH not in directed
    assert hier.within_hops([TENCH], 0) == {TENCH}
    with pytest.raises(DataError, match="unknown hop direction"):
        hier.within_hops([TENCH], 1, "sideways")  # type: ignore[arg-type]


def test_imagenet_graph_links_nearest_imagenet_ancestor(hier: H.Hierarchy) -> None:
    # On the order induced on {tench, fish}, tench's parent is fish (4 WordNet edges up).
    nodes = {TENCH, "n02512053"}  # fish.n.01
    assert hier.within_hops([TENCH], 1, "undirected", nodes, graph="imagenet") == nodes
    assert hier.within_hops([TENCH], 1, "undirected", nodes, graph="imagenet-edges") == {TENCH}


def test_cached_graph_loads_without_nltk(graph_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZSL_SCALE_CACHE", str(graph_cache))
    monkeypatch.setattr(H, "_LOADED", {})

    def boom(*_: object) -> None:
        raise AssertionError("nltk must not be used when the graph is cached")

    monkeypatch.setattr(W, "open_wordnet", boom)
    hier = H.load_hierarchy()
    assert hier.name(TENCH) == "tench.n.01"
    assert list((graph_cache / "wordnet").glob("noun-graph-v*.npz"))


def test_dict_dir_is_staged_with_lexnames(graph_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = wordnet_available()
    if src.kind != "dict":
        pytest.skip("WordNet comes from nltk data here, not a dict directory")
    staged = graph_cache / "nltk_data" / "corpora" / "wordnet"
    assert (staged / "lexnames").read_bytes() == W.LEXNAMES_FILE.read_bytes() or (src.path / "lexnames").is_file()
    assert (staged / "data.noun").stat().st_size == (src.path / "data.noun").stat().st_size


def test_missing_wordnet_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZSL_SCALE_WORDNET", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="apt-get install wordnet-base wordnet-sense-index"):
        H.find_wordnet()
    monkeypatch.delenv("ZSL_SCALE_WORDNET")
    monkeypatch.setattr(W, "DICT_DIRS", (str(tmp_path),))
    monkeypatch.setattr(W, "nltk_search_path", lambda: [str(tmp_path)])
    with pytest.raises(DataError, match=r"WordNet 3\.0 not found .*nltk.downloader wordnet"):
        H.load_hierarchy()


def test_explicit_dict_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "data.noun").write_text("")
    (tmp_path / "index.noun").write_text("")
    monkeypatch.setenv("ZSL_SCALE_WORDNET", str(tmp_path))
    assert H.find_wordnet() == H.WordNetSource("dict", tmp_path.resolve())
