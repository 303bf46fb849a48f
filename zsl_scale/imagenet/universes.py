"""Class universes: which ImageNet classes a user's copy actually has.

The evaluator's splits are drawn from the fall-2011 release (21,841 classes), which ImageNet no longer
distributes. What researchers have today is winter-2021 (part of the person subtree removed), the processed
ImageNet-21K-P (Ridnik et al. 2021) or timm's ImageNet-12K. A *universe* is a named set of wnids; a split
restricted to it (``2H@in12k``, ``xian2018/2H@in21k-p-w21``) keeps only the classes a copy of that release
can have images of, so no zero-image class is ever scored and no number silently mixes class sets.

Named universes are class lists copied unchanged from timm 1.0.31's package data (sha256 pinned here and
in ``zsl_scale/data/imagenet/universes/README.md``):

* ``fall11`` (default): the 21,841 fall-2011 classes (``imagenet22k_synsets.txt``); splits are not restricted.
* ``goog21k``: the 21,843 classes of Google's ImageNet-21K label space (``imagenet21k_goog_synsets.txt``),
  fall-2011 plus two synsets without images.
* ``in21k-p`` / ``in21k-p-w21``: ImageNet-21K-P from fall-2011 (11,221) / winter-2021 (10,450).
* ``in12k``: timm's ImageNet-12K (11,821 classes of winter-2021).

A user's own copy defines its classes exactly: ``counts:<file>`` (a ``features count`` table, classes
with ≥ 1 image) or ``features:<dir>`` (an extracted feature set, classes with ≥ 1 usable image). Their id,
used in split and folder names, is ``counts-<hash>`` / ``features-<hash>``: the first 12 hex digits of the
sha256 of the sorted class list, so the same classes always give the same restricted splits.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zsl_scale.core import PACKAGE_DATA, DataError, sha256_bytes, sha256_file
from zsl_scale.imagenet.classes import imagenet_classes, read_wnid_list
from zsl_scale.imagenet.counts import read_count_table

__all__ = [
    "DEFAULT_UNIVERSE",
    "TRAINING_SETS",
    "UNIVERSES",
    "Universe",
    "is_universe_id",
    "resolve_universe",
    "restrict",
    "training_classes",
    "universe_id",
]

DEFAULT_UNIVERSE = "fall11"
TIMM = "timm 1.0.31 wheel (PyPI), timm/data/_info/"


@dataclass(frozen=True)
class NamedUniverse:
    """A packaged class list: file under ``data/imagenet/universes/`` (or the 21K list), its timm name and hash."""

    file: str
    timm_file: str
    sha256: str
    rows: int
    description: str


UNIVERSES: dict[str, NamedUniverse] = {
    "fall11": NamedUniverse("imagenet21k_wnids.txt", "imagenet22k_synsets.txt",
                            "0ae24538751973797b29d8dec412b2bdc61bc4ec3ecd081eba0735804236bbd2", 21841,
                            "ImageNet fall 2011 (fall11_whole.tar), the splits' own release"),
    "goog21k": NamedUniverse("universes/imagenet21k_goog_synsets.txt", "imagenet21k_goog_synsets.txt",
                             "66362bdedf36d933382edca5493fc562dcc17128ce36403c9e730a75f48cb2f2", 21843,
                             "Google's ImageNet-21K label space: fall 2011 + 2 synsets without images"),
    "in21k-p": NamedUniverse("universes/imagenet21k_miil_synsets.txt", "imagenet21k_miil_synsets.txt",
                             "cd76d977daaa2f13a4a91fca0f53713f2f29675308d4ce0f0ee0e5b07a3164c6", 11221,
                             "ImageNet-21K-P (Ridnik et al. 2021) processed from fall 2011"),
    "in21k-p-w21": NamedUniverse("universes/imagenet21k_miil_w21_synsets.txt", "imagenet21k_miil_w21_synsets.txt",
                                 "f49dde3d69946b8635586432f34f35985f807d168286ce5fde746aac3a7d94c8", 10450,
                                 "ImageNet-21K-P processed from winter 2021"),
    "in12k": NamedUniverse("universes/imagenet12k_synsets.txt", "imagenet12k_synsets.txt",
                           "f6483e79f18a9b670d43d915ddba40bbcaf82cfc4e92a07bd44057b9d44935f3", 11821,
                           "timm's ImageNet-12K (classes of winter 2021)"),
}
_OWN_ID = re.compile(r"^(counts|features)-[0-9a-f]{12}$")
_HELP = (f"known: {', '.join(UNIVERSES)}, counts:<features count table>, features:<feature folder>")


@dataclass(frozen=True)
class Universe:
    """A resolved universe: its id (used in split names), the wnids, and what a manifest records about it."""

    id: str
    wnids: frozenset[str]
    info: dict[str, Any] = field(default_factory=dict)


def is_universe_id(text: str) -> bool:
    """Whether ``text`` can stand after ``@`` in a split name (a named universe or a ``counts-``/``features-`` id)."""
    return text in UNIVERSES or bool(_OWN_ID.match(text))


def universe_id(spec: str) -> str:
    """The id of a universe as typed (``in12k``, ``counts:table.tsv``, ``features:dir``, or an id itself)."""
    if is_universe_id(spec):
        return spec
    return resolve_universe(spec).id


def resolve_universe(spec: str) -> Universe:
    """Load a universe from its spec.

    Raises:
        DataError: unknown name, a missing/bad count table or feature folder, an altered packaged list, or
            an own-copy id typed without its source (the id alone cannot be loaded).
    """
    if spec in UNIVERSES:
        return _named(spec)
    kind, sep, source = spec.partition(":")
    if sep and kind == "counts":
        path = Path(source)
        counts = read_count_table(path)
        return _own("counts", [w for w, n in counts.items() if n > 0], path, sha256_file(path), len(counts))
    if sep and kind == "features":
        manifest = _features_manifest(Path(source))
        counts = manifest.get("class_counts") or {}
        return _own("features", [w for w, n in counts.items() if int(n) > 0], manifest["_path"],
                    sha256_file(manifest["_path"]), len(counts))
    if _OWN_ID.match(spec):
        raise DataError(f"universe {spec} is a user copy's id; pass its source (counts:<file> or features:<dir>)")
    raise DataError(f"unknown universe {spec!r}; {_HELP}")


@functools.lru_cache(maxsize=8)
def _named(name: str) -> Universe:
    entry = UNIVERSES[name]
    path = PACKAGE_DATA / "imagenet" / entry.file
    digest = sha256_file(path)
    if digest != entry.sha256:
        raise DataError(f"packaged class list {path} was altered (sha256 {digest[:12]}…, expected "
                        f"{entry.sha256[:12]}…); reinstall zsl-scale")
    wnids = read_wnid_list(path)
    info = {"id": name, "kind": "packaged", "description": entry.description, "num_classes": len(wnids),
            "file": f"zsl_scale/data/imagenet/{entry.file}", "sha256": digest,
            "provenance": f"{TIMM}{entry.timm_file}, copied unchanged"}
    return Universe(name, frozenset(wnids), info)


def _own(kind: str, wnids: list[str], path: Path, file_sha: str, rows: int) -> Universe:
    if not wnids:
        raise DataError(f"{path} lists no class with an image: an empty universe")
    text = "".join(f"{w}\n" for w in sorted(wnids))
    uid = f"{kind}-{sha256_bytes(text.encode())[:12]}"
    info = {"id": uid, "kind": kind, "description": f"classes with ≥ 1 image in the user's {kind} file",
            "num_classes": len(wnids), "file": path.name, "sha256": file_sha, "rows": rows,
            "class_list_sha256": sha256_bytes(text.encode())}
    return Universe(uid, frozenset(wnids), info)


def _features_manifest(folder: Path) -> dict[str, Any]:
    """The shard manifest of a feature folder (``<dir>/manifest.json`` or a job stage's ``<dir>/shards/``)."""
    for path in (folder / "manifest.json", folder / "shards" / "manifest.json"):
        if path.is_file():
            try:
                doc = json.loads(path.read_text())
            except ValueError as exc:
                raise DataError(f"corrupt features manifest {path}: {exc}") from exc
            if "class_counts" not in doc:
                raise DataError(f"{path} has no class_counts (an unfinished extraction? re-run `features extract`)")
            return {**doc, "_path": path}
    raise DataError(f"no features manifest.json in {folder} (nor in {folder / 'shards'})")


def restrict(wnids: list[str], universe: Universe) -> tuple[list[str], dict[str, Any]]:
    """``wnids`` ∩ the universe (sorted), and the manifest's record of the restriction.

    The seen side is restricted the same way: the 1K classes outside the universe have no images in such a
    copy either, so the search space is (1K ∩ U) + the restricted split; the record lists what was dropped.
    """
    kept = sorted(w for w in wnids if w in universe.wnids)
    dropped = sorted(w for w in wnids if w not in universe.wnids)
    seen = imagenet_classes("1k")
    seen_dropped = sorted(w for w in seen if w not in universe.wnids)
    record = {"universe": universe.info, "kept": len(kept), "dropped": len(dropped), "dropped_wnids": dropped,
              "seen": {"rule": "the 1K ∩ the universe (seen classes without images in such a copy are dropped "
                               "from the search space too)",
                       "num_classes": len(seen) - len(seen_dropped), "dropped_wnids": seen_dropped}}
    return kept, record


TRAINING_SETS: tuple[str, ...] = ("in1k", "in21k", "in22k", *UNIVERSES, "none", "unknown")


def training_classes(label: str) -> frozenset[str] | None:
    """The classes a backbone's weights were trained on, by label: ``in1k`` (ILSVRC-2012), ``in21k`` / ``in22k``
    (fall 2011, 21,841), a universe name (``in12k``, ``in21k-p`` …), ``none`` (no ImageNet labels, e.g.
    self-supervised) or ``unknown`` (returns None: nothing can be checked).

    Raises:
        DataError: an unknown label.
    """
    if label == "unknown":
        return None
    if label == "none":
        return frozenset()
    if label == "in1k":
        return frozenset(imagenet_classes("1k"))
    if label in ("in21k", "in22k"):
        return _named(DEFAULT_UNIVERSE).wnids
    if label in UNIVERSES:
        return _named(label).wnids
    raise DataError(f"unknown training class set {label!r}; use one of {', '.join(TRAINING_SETS)}")
