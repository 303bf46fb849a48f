"""ImageNet-21K class lists, the WordNet hierarchy and the zero-shot splits built from it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zsl_scale.core import lazy_exports

_EXPORTS = {
    "ALL_SPLIT_NAMES": "splits",
    "COUNT_SPLITS": "splits",
    "FALL11_TOPS": "fall11",
    "HOP_SPLITS": "splits",
    "SPLIT_SETS": "splits",
    "STRUCTURAL_SPLITS": "splits",
    "XIAN2018_SHA256": "xian",
    "XIAN_SPLIT_NAMES": "splits",
    "HopDefinition": "splits",
    "build_splits": "splits",
    "built_split_names": "checks",
    "check_split_name": "splits",
    "compare_lists": "checks",
    "compare_set": "reference",
    "default_splits_root": "splits",
    "explain": "reference",
    "first_lemma": "classes",
    "glosses": "classes",
    "hop_size_table": "checks",
    "imagenet_classes": "classes",
    "lemmas": "classes",
    "load_hierarchy": "hierarchy",
    "load_manifest": "stored",
    "load_split": "stored",
    "manifest_sha256": "stored",
    "read_wnid_list": "classes",
    "read_xian_list": "xian",
    "split_dir": "splits",
    "split_seen": "stored",
    "split_set": "splits",
    "split_universe": "splits",
    "UNIVERSES": "universes",
    "DEFAULT_UNIVERSE": "universes",
    "resolve_universe": "universes",
    "universe_id": "universes",
    "training_classes": "universes",
    "TRAINING_SETS": "universes",
    "validate_splits": "checks",
}
__all__ = [
    "ALL_SPLIT_NAMES",
    "COUNT_SPLITS",
    "DEFAULT_UNIVERSE",
    "FALL11_TOPS",
    "HOP_SPLITS",
    "SPLIT_SETS",
    "STRUCTURAL_SPLITS",
    "TRAINING_SETS",
    "UNIVERSES",
    "XIAN2018_SHA256",
    "XIAN_SPLIT_NAMES",
    "HopDefinition",
    "build_splits",
    "built_split_names",
    "check_split_name",
    "compare_lists",
    "compare_set",
    "default_splits_root",
    "explain",
    "first_lemma",
    "glosses",
    "hop_size_table",
    "imagenet_classes",
    "lemmas",
    "load_hierarchy",
    "load_manifest",
    "load_split",
    "manifest_sha256",
    "read_wnid_list",
    "read_xian_list",
    "resolve_universe",
    "split_dir",
    "split_seen",
    "split_set",
    "split_universe",
    "training_classes",
    "universe_id",
    "validate_splits",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # static analysers see the names; at run time they load on first use
    from zsl_scale.imagenet.checks import built_split_names, compare_lists, hop_size_table, validate_splits
    from zsl_scale.imagenet.classes import first_lemma, glosses, imagenet_classes, lemmas, read_wnid_list
    from zsl_scale.imagenet.fall11 import FALL11_TOPS
    from zsl_scale.imagenet.hierarchy import load_hierarchy
    from zsl_scale.imagenet.reference import compare_set, explain
    from zsl_scale.imagenet.splits import (
        ALL_SPLIT_NAMES,
        COUNT_SPLITS,
        HOP_SPLITS,
        SPLIT_SETS,
        STRUCTURAL_SPLITS,
        XIAN_SPLIT_NAMES,
        HopDefinition,
        build_splits,
        check_split_name,
        default_splits_root,
        split_dir,
        split_set,
        split_universe,
    )
    from zsl_scale.imagenet.stored import load_manifest, load_split, manifest_sha256, split_seen
    from zsl_scale.imagenet.universes import (
        DEFAULT_UNIVERSE,
        TRAINING_SETS,
        UNIVERSES,
        resolve_universe,
        training_classes,
        universe_id,
    )
    from zsl_scale.imagenet.xian import XIAN2018_SHA256, read_xian_list
