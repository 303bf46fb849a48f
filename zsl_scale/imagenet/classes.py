"""ImageNet class lists shipped as package data: 21K and 1K wnids, lemmas and glosses.

The lists are copied unchanged from the timm 1.0.31 wheel (see ``zsl_scale/data/imagenet/README.md``
for provenance and sha256). They live in the package, not in the shared data folder, so that split
building and class embedding work on a fresh install, and so that a split manifest can pin the exact
list it was built from by hash.

Note: n04399382 (teddy bear) is in the 1K list but not in the 21,841 list, so 999 classes are shared.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Literal

from zsl_scale.core import PACKAGE_DATA, DataError, read_text_file, sha256_file

IMAGENET_DATA = PACKAGE_DATA / "imagenet"
CLASS_LIST_FILES: dict[str, str] = {"21k": "imagenet21k_wnids.txt", "1k": "imagenet1k_wnids.txt"}
WNID_RE = re.compile(r"^n\d{8}$")

Which = Literal["21k", "1k", "all"]


def class_list_path(which: str) -> Path:
    """Path of the packaged wnid list ``"21k"`` or ``"1k"``."""
    if which not in CLASS_LIST_FILES:
        raise DataError(f"unknown class list {which!r}; known: {', '.join(CLASS_LIST_FILES)}")
    return IMAGENET_DATA / CLASS_LIST_FILES[which]


@functools.lru_cache(maxsize=4)
def imagenet_classes(which: Which = "21k") -> tuple[str, ...]:
    """Sorted wnids of ImageNet-21K (``"21k"``, 21,841), ILSVRC-2012 (``"1k"``, 1,000) or both (``"all"``).

    ``"all"`` is the 21,842 classes that need an embedding: the 21K list plus n04399382, the one 1K
    class missing from it.
    """
    if which == "all":
        return tuple(sorted(set(imagenet_classes("21k")) | set(imagenet_classes("1k"))))
    return tuple(read_wnid_list(class_list_path(which)))


def class_list_sha256(which: str) -> str:
    """sha256 of a packaged class list file (recorded in split manifests)."""
    return sha256_file(class_list_path(which))


@functools.lru_cache(maxsize=1)
def lemmas() -> dict[str, str]:
    """wnid -> comma-separated WordNet lemmas, e.g. ``n01440764 -> "tench, Tinca tinca"``."""
    return _read_tsv(IMAGENET_DATA / "wnid_lemmas.tsv")


@functools.lru_cache(maxsize=1)
def glosses() -> dict[str, str]:
    """wnid -> WordNet gloss (definition)."""
    return _read_tsv(IMAGENET_DATA / "wnid_glosses.tsv")


def first_lemma(wnid: str) -> str:
    """The first (most common) lemma of a class, for display."""
    return lemmas().get(wnid, "?").split(",")[0].strip()


def read_wnid_list(path: str | Path) -> list[str]:
    """Read a wnid list: one wnid per line; blank lines and ``#`` comments ignored.

    Only the first whitespace- or comma-separated field of a line is used, so that published lists
    with extra columns (``n01440764 tench``) can be read as they are.

    Raises:
        DataError: the file is missing, or a line does not start with a wnid (``n`` + 8 digits).
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"wnid list not found: {p}")
    out: list[str] = []
    for lineno, raw in enumerate(read_text_file(p, "wnid list").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        token = re.split(r"[\s,]+", line, maxsplit=1)[0]
        if not WNID_RE.match(token):
            raise DataError(f"{p}:{lineno}: not a wnid (expected n + 8 digits): {token!r}")
        out.append(token)
    return out


def _read_tsv(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in read_text_file(path, "class list").splitlines():
        if line:
            key, _, value = line.partition("\t")
            out[key] = value.strip()
    return out
