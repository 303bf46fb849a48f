"""Xian et al. (2018)'s nine ImageNet-21K split lists: a reference split set, pinned by sha256.

The CADA-VAE paper reports on the splits of Xian, Lampert, Schiele, Akata (TPAMI 2018): 2H, 3H, M500,
M1K, M5K, L500, L1K, L5K and All. Their M*/L* need per-class image counts that are not public, so
they cannot be rebuilt; their lists (decoded from the ``.mat`` files of Xian et al.'s release, see
``../shared/data/imagenet/xian2018/README.md``) are committed instead, under ``splits/xian2018/``, and
"building" such a split copies a list after checking it against the sha256 pinned here, so a damaged
or different file is never used under Xian's name.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from zsl_scale.core import PACKAGE_ROOT, DataError, sha256_bytes, shared_data_dir

__all__ = ["XIAN2018", "XIAN2018_SHA256", "XIAN2018_SPLITS", "read_xian_list", "xian_definition", "xian_source"]

XIAN2018 = "xian2018"
XIAN2018_SHA256: dict[str, str] = {
    "2H": "eada80ed8defde89cfe8550dd769f52936cce60a2625890ecd46d341f125f80b",
    "3H": "ebf7ba5747732f8c50bde719a964cc797fcf8e2ce0aaffaaeac92d98b91bdf1f",
    "M500": "414b39e829957bae61a1d59e0184a3f77970e86ed1a9ac0d49034c0273a4766a",
    "M1K": "d9db97b6d4a989338a919b019316adcd5f3b990e974f6edcf7ce2e7e58af549c",
    "M5K": "d5de0bbccec06fa8537bcff50ce1fde0f6a70d54d28e2fbadbc619d3ab7d89eb",
    "L500": "17070ca285e0c8eb6081a1105d906f899752b5f3eabf92966b304938b6f1c8ef",
    "L1K": "d85d8162fa5e2441f55c0c0f19963cf625537e83ce734a9e437dc301c63bd73c",
    "L5K": "04c4424c6f63ce2e0a60923bc523424fab223ad7555858c6e3bfc2356a1ad028",
    "All": "b72c566940a70fb67eb5f8d977b859e2e61b472ddc6d87fbc02e142dc7ec0bd2",
}
XIAN2018_SPLITS: tuple[str, ...] = tuple(XIAN2018_SHA256)
_DEFINITIONS = {
    "2H": "within two hops of the 1K in ImageNet's fall-2011 hierarchy",
    "3H": "within three hops of the 1K in ImageNet's fall-2011 hierarchy",
    "M500": "the 500 most populated classes",
    "M1K": "the 1,000 most populated classes",
    "M5K": "the 5,000 most populated classes",
    "L500": "the 500 least populated classes",
    "L1K": "the 1,000 least populated classes",
    "L5K": "the 5,000 least populated classes",
    "All": "every class of their benchmark (fall 2011 outside the 1K with a word2vec vector)",
}
PROVENANCE = ("Xian, Lampert, Schiele, Akata, TPAMI 2018 ImageNet split .mat files (via "
              "sebastianbujwid/zsl_methods_imagenet), indices mapped to wnids; see docs/splits.md")


def xian_definition(split: str) -> str:
    """Human-readable definition recorded in the split's manifest."""
    return f"Xian et al. (2018) list {split}: {_DEFINITIONS[split]}, copied unchanged"


def xian_source(split: str, source: str | os.PathLike[str] | None = None) -> Path:
    """Where the list ``split`` is read from: ``source`` (a folder of ``<split>.txt`` or of
    ``<split>/<split>.txt``), else the checkout's committed ``splits/xian2018``, else the shared data."""
    folders = [Path(source)] if source is not None else [
        PACKAGE_ROOT.parent / "splits" / XIAN2018, shared_data_dir() / "imagenet" / XIAN2018]
    for folder in folders:
        for cand in (folder / split / f"{split}.txt", folder / f"{split}.txt"):
            if cand.is_file():
                return cand
    where = ", ".join(str(f) for f in folders)
    raise DataError(f"Xian et al. list {split}.txt not found in {where} (pass --xian-source DIR)")


def read_xian_list(split: str, source: str | os.PathLike[str] | None = None) -> tuple[list[str], dict[str, Any]]:
    """The wnids of Xian's ``split`` and the manifest's ``source`` record, after the sha256 check.

    Raises:
        DataError: list not found, or its sha256 is not the published one.
    """
    path = xian_source(split, source)
    data = path.read_bytes()
    digest = sha256_bytes(data)
    if digest != XIAN2018_SHA256[split]:
        raise DataError(f"{path} is not Xian et al.'s {split} list (sha256 {digest[:12]}…, expected "
                        f"{XIAN2018_SHA256[split][:12]}…)")
    wnids = data.decode().split()
    info = {"file": f"{XIAN2018}/{split}.txt", "provenance": PROVENANCE, "rows": len(wnids), "sha256": digest}
    return wnids, info
