"""Reading built splits back: manifests, their hashes, the lists (checked against their manifests) and the
seen classes that go with each split (the 1K, or the 1K ∩ the universe of a restricted split).

Apart from :mod:`zsl_scale.imagenet.splits` (which builds and writes) because every later stage reads splits
through these functions only.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from zsl_scale.core import DataError, dumps_json, read_text_file, sha256_bytes, sha256_file
from zsl_scale.imagenet.classes import imagenet_classes
from zsl_scale.imagenet.splits import split_dir

__all__ = ["load_manifest", "load_split", "manifest_sha256", "split_seen"]


def load_manifest(name: str, root: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The manifest of a built split; DataError if it was never built under ``root``."""
    import json

    path = split_dir(name, root) / "manifest.json"
    if not path.is_file():
        raise DataError(f"split {name} is not built under {path.parent.parent} (run `zsl-scale splits build`)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DataError(f"corrupt split manifest {path}: {' '.join(str(exc).split())[:200]}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("files", {}), dict):
        raise DataError(f"corrupt split manifest {path}: not a split manifest (a JSON object with 'files')")
    return doc


def manifest_sha256(name: str, root: str | os.PathLike[str] | None = None) -> str:
    """sha256 of a split's manifest: what results files record to pin the split they used."""
    return sha256_bytes(dumps_json(load_manifest(name, root)).encode())


def load_split(name: str, root: str | os.PathLike[str] | None = None, verify: bool = True) -> list[str]:
    """The sorted wnids of a built split (the public entry point for later stages).

    Args:
        name: Split name (:data:`SPLIT_NAMES`).
        root: Splits root (default :func:`default_splits_root`).
        verify: Check the list's sha256 against the manifest, so an edited file is never used silently.

    Raises:
        DataError: unknown name, split not built, or list does not match its manifest.
    """
    manifest = load_manifest(name, root)
    folder = split_dir(name, root)
    path = folder / f"{folder.name}.txt"
    if not path.is_file():
        raise DataError(f"split list missing: {path} (run `zsl-scale splits build`)")
    expected = manifest.get("files", {}).get(path.name, {}).get("sha256")
    if verify and expected != sha256_file(path):
        raise DataError(f"{path} does not match its manifest.json (edited after build?); rebuild it")
    wnids = read_text_file(path, "split list").split()
    stray = sorted(set(wnids) - _known_classes())
    if stray:  # a class outside ImageNet would be scored wherever a classifier happens to have its row
        raise DataError(f"split {name} ({path}) lists {len(stray)} wnid(s) outside ImageNet-21K and the 1K, "
                        f"e.g. {stray[0]}")
    return wnids


@functools.lru_cache(maxsize=1)
def _known_classes() -> frozenset[str]:
    return frozenset(imagenet_classes("all"))


def split_seen(name: str, root: str | os.PathLike[str] | None = None) -> list[str]:
    """The seen classes of split ``name``'s search space: the 1K, minus the 1K classes its universe lacks
    (recorded in a restricted split's manifest, ``restriction.seen``)."""
    seen = imagenet_classes("1k")
    if "@" not in name:
        return list(seen)
    dropped = set(load_manifest(name, root).get("restriction", {}).get("seen", {}).get("dropped_wnids", []))
    return [w for w in seen if w not in dropped]
