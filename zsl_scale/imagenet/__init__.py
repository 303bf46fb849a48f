"""ImageNet-21K class lists, the WordNet hierarchy and the zero-shot splits built from it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zsl_scale.core import lazy_exports

_EXPORTS = {
    "COUNT_SPLITS": "splits",
    "HOP_SPLITS": "splits",
    "HopDefinition": "splits",
    "STRUCTURAL_SPLITS": "splits",
    "build_splits": "splits",
    "built_split_names": "checks",
    "check_split_name": "splits",
    "compare_lists": "checks",
    "default_splits_root": "splits",
    "first_lemma": "classes",
    "glosses": "classes",
    "hop_size_table": "checks",
    "imagenet_classes": "classes",
    "lemmas": "classes",
    "load_hierarchy": "hierarchy",
    "load_manifest": "splits",
    "load_split": "splits",
    "manifest_sha256": "splits",
    "read_wnid_list": "classes",
    "validate_splits": "checks",
}
__all__ = [
    "COUNT_SPLITS",
    "HOP_SPLITS",
    "STRUCTURAL_SPLITS",
    "HopDefinition",
    "build_splits",
    "built_split_names",
    "check_split_name",
    "compare_lists",
    "default_splits_root",
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
    "validate_splits",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # static analysers see the names; at run time they load on first use
    from zsl_scale.imagenet.checks import built_split_names, compare_lists, hop_size_table, validate_splits
    from zsl_scale.imagenet.classes import first_lemma, glosses, imagenet_classes, lemmas, read_wnid_list
    from zsl_scale.imagenet.hierarchy import load_hierarchy
    from zsl_scale.imagenet.splits import (
        COUNT_SPLITS,
        HOP_SPLITS,
        STRUCTURAL_SPLITS,
        HopDefinition,
        build_splits,
        check_split_name,
        default_splits_root,
        load_manifest,
        load_split,
        manifest_sha256,
    )
