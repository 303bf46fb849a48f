"""The images of an xlsa17 benchmark, in the row order of its ``res101.mat`` / ``att_splits.mat``.

xlsa17 files store one feature row per image but not always a usable file list; for Flowers-102 the
rows are the images in the order ``setid.trnid``, then ``setid.valid``, then ``setid.tstid`` (as listed,
not sorted; ``../shared/data/flo/README.md``), and each image's class is ``imagelabels.mat``. Sorted file
order does NOT match the split, so a job that extracts its own features must list the images in this
order and keep each image's xlsa17 row, or its splits would point at the wrong images.

The listing is written as a feature-extraction list file whose paths are tar members read in place
(``<tar>::<member>``, :mod:`zsl_scale.features.inputs`): nothing is unpacked.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zsl_scale.core import DataError, atomic_write_text, shard_files

__all__ = ["BenchImage", "compare_with_mat", "image_list_text", "write_image_list", "xlsa17_images"]


@dataclass(frozen=True)
class BenchImage:
    """One image of the benchmark: its 0-based xlsa17 row, tar member and 0-based class."""

    row: int
    member: str
    label: int

    def wnid(self, prefix: str) -> str:
        """The class id used across the pipeline (``<prefix>_<1-based label:03d>``, e.g. ``flower_001``)."""
        return f"{prefix}_{self.label + 1:03d}"

    def image_id(self, prefix: str) -> str:
        """``<wnid>/<file stem>``: the id the features stage gives this image (features.inputs)."""
        return f"{self.wnid(prefix)}/{Path(self.member).stem}"


def _mat(path: Path) -> dict:
    from scipy.io import loadmat

    if not path.is_file():
        raise DataError(f"benchmark file not found: {path}")
    return loadmat(str(path))


def xlsa17_images(folder: str | Path, tar_name: str = "jpg64.tar", member_dir: str = "jpg64") -> list[BenchImage]:
    """Every image of a Flowers-style xlsa17 benchmark in xlsa17 row order (``setid`` trn, val, tst).

    Raises :class:`DataError` when a listed image is missing from the tar or the labels do not cover it.
    """
    root = Path(folder).expanduser()
    setid, labels = _mat(root / "setid.mat"), _mat(root / "imagelabels.mat")["labels"].ravel().astype(np.int64)
    order = np.concatenate([setid[k].ravel() for k in ("trnid", "valid", "tstid")]).astype(np.int64)
    if order.min() < 1 or order.max() > len(labels):
        raise DataError(f"{root}/setid.mat lists image numbers outside 1..{len(labels)}")
    tar_path = root / tar_name
    if not tar_path.is_file():
        raise DataError(f"image tar not found: {tar_path}")
    with tarfile.open(tar_path, mode="r:") as tf:
        names = {m.name for m in tf.getmembers() if m.isfile()}
    out = []
    for row, num in enumerate(order.tolist()):
        member = f"{member_dir}/image_{num:05d}.jpg"
        if member not in names:
            raise DataError(f"{tar_path} has no member {member} (xlsa17 row {row + 1})")
        out.append(BenchImage(row, member, int(labels[num - 1]) - 1))
    return out


def image_list_text(tar_path: str | Path, images: list[BenchImage], prefix: str) -> str:
    """A features list file (``<tar>::<member><TAB><wnid>`` per line) for ``images``."""
    lines = ["path\twnid"] + [f"{tar_path}::{im.member}\t{im.wnid(prefix)}" for im in images]
    return "\n".join(lines) + "\n"


def write_image_list(path: str | Path, tar_path: str | Path, images: list[BenchImage], prefix: str) -> Path:
    """Write :func:`image_list_text` atomically."""
    atomic_write_text(Path(path), image_list_text(tar_path, images, prefix))
    return Path(path)


def compare_with_mat(shards: str | Path, mat_path: str | Path, images: list[BenchImage], prefix: str) -> np.ndarray:
    """Per-row cosine between extracted features (``shards``) and the matching rows of an xlsa17 ``.mat``.

    The acceptance check of a features stage: same images, same preprocessing must give the shipped
    features back (cosine ≈ 1); anything lower means a different resize, crop, normalisation or dtype.
    Returns one cosine per extracted image, in extraction (shard) order.
    """
    import pyarrow.parquet as pq

    ref = _mat(Path(mat_path))["features"]  # [D, N], xlsa17 layout
    row_of = {im.image_id(prefix): im.row for im in images}
    files = shard_files(shards, "features")
    cos = []
    for f in files:
        t = pq.read_table(f, columns=["image_id", "feature"])
        ids = t.column("image_id").to_pylist()
        x = np.asarray(t.column("feature").combine_chunks().flatten(), dtype=np.float64).reshape(len(ids), -1)
        missing = [i for i in ids if i not in row_of]
        if missing:
            raise DataError(f"{f}: image {missing[0]!r} is not an image of the benchmark listing")
        y = ref[:, [row_of[i] for i in ids]].T.astype(np.float64)
        cos.append((x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1)))
    return np.concatenate(cos)
