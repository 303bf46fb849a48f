"""ImageNet-21K class lists, the WordNet hierarchy and the zero-shot splits built from it."""

from __future__ import annotations

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
__all__ = [*_EXPORTS]  # each public name is listed once, in _EXPORTS (name → module)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
