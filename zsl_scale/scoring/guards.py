"""What may be scored, and how it is labelled: test images per split class, subsampled test sets, and
backbones that were pretrained on the "unseen" classes.

* A split whose classes have no test image would be scored over the classes that happen to have images:
  a number over another class set than its name says. :func:`check_split_images` refuses it and names the
  universe to restrict the split to (:mod:`zsl_scale.imagenet.universes`).
* ``max_test_per_class`` N keeps, per class, the N images whose ``sha256(f"{seed}:{image_id}")`` is
  smallest: independent of shard layout, worker count and reading order, so two runs and 1 vs 2 workers
  choose the same images (:func:`choose_test_images`).
* A backbone trained on ImageNet-21K/12K classes has seen the "unseen" classes. The features manifest says
  what the weights were trained on (``backbone.trained_on``); :func:`pretraining_check` refuses an overlap
  unless it is allowed, and then labels it.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from zsl_scale.core import DataError

__all__ = ["check_split_images", "choose_test_images", "class_images", "pretraining_check", "trained_on"]


def class_images(shards: Iterable[Path]) -> Counter[str]:
    """Test images per class over the query shards (reads the ``wnid`` column only)."""
    import pyarrow.parquet as pq

    counts: Counter[str] = Counter()
    for path in shards:
        counts.update(pq.read_table(path, columns=["wnid"]).column("wnid").to_pylist())
    return counts


def check_split_images(name: str, wnids: list[str], images: Counter[str]) -> None:
    """Refuse a split with classes that have no test image (one line: counts, an example, the fix)."""
    missing = [w for w in wnids if images.get(w, 0) == 0]
    if not missing:
        return
    base = name.partition("@")[0]
    raise DataError(
        f"split {name}: {len(missing):,} of its {len(wnids):,} classes have no test image (e.g. {missing[0]}); "
        f"score what your copy has: `zsl-scale splits build -s {base} --universe features:<test features>` "
        f"(or --universe in21k-p | in21k-p-w21 | in12k for those releases) and evaluate {base}@<universe>")


def _rank(seed: int, image_id: str) -> bytes:
    return hashlib.sha256(f"{seed}:{image_id}".encode()).digest()


def choose_test_images(shards: Iterable[Path], n: int, seed: int) -> tuple[frozenset[str], str]:
    """Per class, the ``n`` image ids with the smallest seeded hash; and the sha256 of the chosen ids."""
    import pyarrow.parquet as pq

    if n < 1:
        raise DataError(f"--max-test-per-class must be ≥ 1, got {n}")
    heaps: dict[str, list[tuple[bytes, str]]] = {}
    for path in shards:
        table = pq.read_table(path, columns=["image_id", "wnid"])
        for image_id, wnid in zip(table.column("image_id").to_pylist(), table.column("wnid").to_pylist(),
                                  strict=True):
            heap = heaps.setdefault(wnid, [])
            item = (_neg(_rank(seed, image_id)), image_id)  # max-heap of the n smallest ranks
            if len(heap) < n:
                heapq.heappush(heap, item)
            elif item > heap[0]:
                heapq.heapreplace(heap, item)
    chosen = sorted(i for heap in heaps.values() for _, i in heap)
    return frozenset(chosen), hashlib.sha256("".join(f"{i}\n" for i in chosen).encode()).hexdigest()


def _neg(rank: bytes) -> bytes:
    return bytes(255 - b for b in rank)


def trained_on(query_dir: Path) -> str:
    """The class set the backbone of the queries' features was trained on (``unknown`` if not recorded).

    The queries are a feature folder (its manifest has ``backbone``) or latents of one (``source_path``).
    """
    doc = _manifest(query_dir / "manifest.json")
    if "backbone" not in doc and doc.get("source_path"):
        doc = _manifest(Path(doc["source_path"]) / "manifest.json")
    backbone = doc.get("backbone")
    return str(backbone.get("trained_on", "unknown")) if isinstance(backbone, dict) else "unknown"


def _manifest(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def pretraining_check(name: str, unseen: list[str], label: str, allow: bool) -> str:
    """``in1k``-style label of a clean score, ``pretraining overlap`` (allowed) or ``pretraining unknown``.

    Raises:
        DataError: the backbone was trained on some of the split's unseen classes and ``allow`` is false.
    """
    from zsl_scale.imagenet import training_classes

    classes = training_classes(label)
    if classes is None:
        return "pretraining unknown"
    overlap = [w for w in unseen if w in classes]
    if not overlap:
        return f"backbone: {label}"
    if not allow:
        raise DataError(f"split {name}: the backbone was trained on {label} classes, {len(overlap):,} of the "
                        f"{len(unseen):,} unseen classes among them (e.g. {overlap[0]}): not zero-shot; pass "
                        "--allow-pretraining-overlap to score it anyway (labelled 'pretraining overlap')")
    return "pretraining overlap"
