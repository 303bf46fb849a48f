"""Small GZSL benchmarks as data: the project's bundle format and loaders for the xlsa17 release.

A **bundle** is a directory that fully describes one benchmark:

* ``features.parquet`` — one row per image: ``image_id`` (string), ``label`` (int32, 0-based class
  index), ``feature`` (fixed_size_list<float16|float32>[D]);
* ``classes.parquet`` — one row per class: ``label`` (int32), ``name`` (string), ``embedding``
  (fixed_size_list<float32>[E]);
* ``splits.parquet`` — ``split`` (string) and ``row`` (int32, 0-based row of ``features.parquet``), one
  row per (split, image) membership, because xlsa17 splits overlap (train/val contain test_seen rows);
* ``benchmark.json`` — name, sizes, provenance and the sha256 of each file above.

The xlsa17 release (``res101.mat`` + ``att_splits.mat``, 1-based ``*_loc`` arrays) converts into a bundle
with :func:`load_xlsa17`; Flowers-102 ships inside the package as a bundle with float16 features.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from zsl_scale.core import (
    PACKAGE_DATA,
    DataError,
    atomic_write_json,
    atomic_write_parquet,
    sha256_file,
    shared_data_dir,
)

SPLITS = ("train", "val", "trainval", "test_seen", "test_unseen")
BUNDLE_VERSION = "1"
PACKAGED = {"flo": PACKAGE_DATA / "benchmarks" / "flo"}
XLSA17_NAMES = ("cub", "sun", "awa1", "awa2", "apy", "flo")


@dataclass
class Benchmark:
    """A GZSL benchmark in memory. ``features[i]`` has class ``labels[i]``; splits hold 0-based rows."""

    name: str
    features: np.ndarray  # [N, D] float32 (or float16 from a bundle)
    labels: np.ndarray  # [N] int64, 0-based class index
    class_names: list[str]
    class_embeddings: np.ndarray  # [C, E] float32
    splits: dict[str, np.ndarray]
    image_ids: list[str]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def classes_of(self, split: str) -> np.ndarray:
        """Sorted class indices present in ``split``."""
        return np.unique(self.labels[self.splits[split]])

    def validate(self) -> Benchmark:
        """Check the invariants every stage relies on; raise one clear :class:`DataError` otherwise."""
        n = self.features.shape[0]
        if self.features.ndim != 2 or n == 0:
            raise DataError(f"{self.name}: features must be a non-empty 2-D matrix, got {self.features.shape}")
        if self.labels.shape != (n,):
            raise DataError(f"{self.name}: {n} feature rows but {self.labels.shape[0]} labels")
        if self.class_embeddings.ndim != 2 or self.class_embeddings.shape[0] != self.n_classes:
            raise DataError(
                f"{self.name}: class-embedding matrix has {self.class_embeddings.shape[0]} rows but the "
                f"benchmark has {self.n_classes} classes"
            )
        if self.labels.min() < 0 or self.labels.max() >= self.n_classes:
            raise DataError(f"{self.name}: labels must lie in [0, {self.n_classes}), "
                            f"got [{self.labels.min()}, {self.labels.max()}]")
        if not np.isfinite(self.features).all():
            bad = int((~np.isfinite(self.features).all(axis=1)).sum())
            raise DataError(f"{self.name}: {bad} feature rows contain NaN or infinite values")
        if not np.isfinite(self.class_embeddings).all():
            raise DataError(f"{self.name}: class embeddings contain NaN or infinite values")
        missing = [s for s in SPLITS if s not in self.splits]
        if missing:
            raise DataError(f"{self.name}: missing splits {missing}")
        for split, rows in self.splits.items():
            if len(rows) and (rows.min() < 0 or rows.max() >= n):
                raise DataError(f"{self.name}: split {split} points outside the {n} feature rows")
        overlap = np.intersect1d(self.classes_of("test_unseen"), self.classes_of("trainval"))
        if overlap.size:
            names = [self.class_names[i] for i in overlap[:5]]
            raise DataError(
                f"{self.name}: {overlap.size} unseen test classes also appear in the training split "
                f"(e.g. {names}); a zero-shot split must keep them disjoint"
            )
        return self


def _loc(mat: dict[str, Any], key: str, path: Path) -> np.ndarray:
    if key not in mat:
        raise DataError(f"{path}: missing '{key}' (not an xlsa17 att_splits.mat file?)")
    return np.asarray(mat[key]).astype(np.int64).ravel() - 1


def _loadmat(path: Path) -> dict[str, Any]:
    from scipy.io import loadmat

    if not path.is_file():
        raise DataError(f"file not found: {path}")
    try:
        return loadmat(str(path))
    except Exception as exc:  # scipy raises several types for corrupt files
        raise DataError(f"cannot read {path} as a MATLAB file: {exc}") from exc


def load_xlsa17(
    features_mat: str | Path,
    splits_mat: str | Path,
    name: str | None = None,
    class_embeddings: str | Path | np.ndarray | None = None,
) -> Benchmark:
    """Load a benchmark in the xlsa17 layout (Xian et al.): ``res101.mat`` + ``att_splits.mat``.

    Args:
        features_mat: ``res101.mat``-style file: ``features`` [D, N], ``labels`` [N, 1] (1-based),
            optionally ``image_files``.
        splits_mat: ``att_splits.mat``: ``att`` [E, C], ``*_loc`` arrays (1-based rows), optionally
            ``allclasses_names``.
        name: benchmark name (default: the parent folder's name, lower-cased).
        class_embeddings: optional replacement embeddings [C, E] — e.g. the CUB sentence embeddings
            (a ``.npy`` file, a ``.mat`` file with ``att``, or an array).
    """
    features_mat, splits_mat = Path(features_mat), Path(splits_mat)
    res, att = _loadmat(features_mat), _loadmat(splits_mat)
    if "features" not in res or "labels" not in res:
        raise DataError(f"{features_mat}: needs 'features' and 'labels' (xlsa17 res101.mat layout)")
    feats = np.ascontiguousarray(np.asarray(res["features"], dtype=np.float32).T)
    labels = np.asarray(res["labels"]).astype(np.int64).ravel() - 1
    emb = _embeddings(class_embeddings, att, splits_mat)
    # The class count comes from the split file (names, else its attribute matrix), never from an override
    # matrix: one with extra or missing rows is then refused by validate() with a message about its rows.
    n_classes = np.asarray(att["att"]).shape[1] if "att" in att else emb.shape[0]
    if "allclasses_names" in att:
        class_names = [str(np.asarray(x).ravel()[0]) for x in np.asarray(att["allclasses_names"]).ravel()]
    else:
        class_names = [f"class_{i + 1:03d}" for i in range(max(n_classes, int(labels.max()) + 1))]
    if "image_files" in res:
        image_ids = [str(np.asarray(x).ravel()[0]) for x in np.asarray(res["image_files"]).ravel()]
    else:
        image_ids = [f"{i:06d}" for i in range(feats.shape[0])]
    splits = {s: _loc(att, f"{s}_loc", splits_mat) for s in SPLITS}
    bench = Benchmark(
        name=(name or splits_mat.parent.name).lower(),
        features=feats,
        labels=labels,
        class_names=class_names,
        class_embeddings=emb,
        splits=splits,
        image_ids=image_ids,
        info={"source": "xlsa17", "features_file": str(features_mat), "splits_file": str(splits_mat),
              "files_sha256": {features_mat.name: sha256_file(features_mat), splits_mat.name: sha256_file(splits_mat),
                               **({Path(class_embeddings).name: sha256_file(class_embeddings)}
                                  if isinstance(class_embeddings, (str, Path)) else {})}},
    )
    return bench.validate()


def _embeddings(override: str | Path | np.ndarray | None, att: dict[str, Any], path: Path) -> np.ndarray:
    if override is None:
        if "att" not in att:
            raise DataError(f"{path}: missing 'att' (class embeddings)")
        return np.ascontiguousarray(np.asarray(att["att"], dtype=np.float32).T)
    if isinstance(override, np.ndarray):
        return override.astype(np.float32)
    p = Path(override)
    if p.suffix == ".npy":
        if not p.is_file():
            raise DataError(f"file not found: {p}")
        return np.load(p).astype(np.float32)
    mat = _loadmat(p)
    key = "att" if "att" in mat else next((k for k in mat if not k.startswith("__")), None)
    if key is None:
        raise DataError(f"{p}: no class-embedding matrix inside")
    return np.ascontiguousarray(np.asarray(mat[key], dtype=np.float32).T)


def load_flo(directory: str | Path | None = None) -> Benchmark:
    """The real Flowers-102 benchmark from the shared data folder (EfficientNet-Lite0 features).

    Its ``res101_efflite0.mat`` rows are already in xlsa17 order (trnid, valid, tstid as listed), so the
    standard ``att_splits.mat`` applies unchanged; see the data folder's README.
    """
    d = Path(directory) if directory is not None else shared_data_dir() / "flo"
    bench = load_xlsa17(d / "res101_efflite0.mat", d / "att_splits.mat", name="flo")
    bench.class_names = [f"flower_{i + 1:03d}" for i in range(bench.n_classes)]
    bench.info.update({"features": "EfficientNet-Lite0 (64x64 images), 1280-d", "embeddings": "1024-d sentences"})
    return bench


def save_bundle(bench: Benchmark, directory: str | Path, feature_dtype: str = "float16") -> Path:
    """Write ``bench`` as a bundle (see module docstring); each file atomically, the JSON last."""
    bench.validate()
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    feats = bench.features.astype(feature_dtype)
    dim = feats.shape[1]
    value_type = pa.float16() if feature_dtype == "float16" else pa.float32()
    feature_col = pa.FixedSizeListArray.from_arrays(pa.array(feats.ravel(), type=value_type), dim)
    features = pa.table({"image_id": pa.array(bench.image_ids, pa.string()),
                         "label": pa.array(bench.labels, pa.int32()), "feature": feature_col})
    emb = bench.class_embeddings.astype(np.float32)
    classes = pa.table({
        "label": pa.array(np.arange(bench.n_classes), pa.int32()),
        "name": pa.array(bench.class_names, pa.string()),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel(), pa.float32()), emb.shape[1]),
    })
    split_names = np.concatenate([[s] * len(bench.splits[s]) for s in SPLITS])
    split_rows = np.concatenate([bench.splits[s] for s in SPLITS])
    splits = pa.table({"split": pa.array(split_names, pa.string()), "row": pa.array(split_rows, pa.int32())})
    files = {"features.parquet": features, "classes.parquet": classes, "splits.parquet": splits}
    for fname, table in files.items():
        atomic_write_parquet(d / fname, table, compression="zstd")
    meta = {
        "bundle_version": BUNDLE_VERSION,
        "name": bench.name,
        "n_images": int(feats.shape[0]),
        "n_classes": bench.n_classes,
        "feature_dim": int(dim),
        "feature_dtype": feature_dtype,
        "embedding_dim": int(emb.shape[1]),
        "split_sizes": {s: len(bench.splits[s]) for s in SPLITS},
        "info": bench.info,
        "sha256": {f: sha256_file(d / f) for f in files},
    }
    atomic_write_json(d / "benchmark.json", meta)
    return d


BUNDLE_FILES = ("features.parquet", "classes.parquet", "splits.parquet")


def load_bundle(directory: str | Path) -> Benchmark:
    """Read a bundle written by :func:`save_bundle`, verified against its ``benchmark.json``.

    Every file is hashed in full on every open (no size/mtime fast path: a same-size edit changes the
    hash; the bundled Flowers-102 hashes in ~0.05 s) and must match its recorded sha256; the class,
    image and split counts recorded there must match the files. A mismatch is one :class:`DataError`
    line naming the file and both values, so an edited bundle never yields numbers under its old name.
    """
    d = Path(directory)
    meta_path = d / "benchmark.json"
    if not meta_path.is_file():
        raise DataError(f"{d} is not a benchmark bundle (no benchmark.json)")
    meta = _read_meta(d, meta_path)
    recorded = meta["sha256"]
    files = {"benchmark.json": sha256_file(meta_path)}  # provenance hashes the bytes, not recorded digests
    for fname in sorted({*recorded, *BUNDLE_FILES}):
        if not (d / fname).is_file():
            raise DataError(f"bundle {d} is missing {fname}")
        files[fname] = sha256_file(d / fname)
        if files[fname] != recorded.get(fname):
            raise DataError(f"bundle {d}: {fname} has sha256 {files[fname]} but benchmark.json records "
                            f"{recorded.get(fname) or 'none'} (the file was changed after the bundle was written)")
    ft, ct, st = (_read_parquet(d, f) for f in ("features.parquet", "classes.parquet", "splits.parquet"))
    try:
        feature_col = ft.column("feature").combine_chunks()
        dim = feature_col.type.list_size
        feats = feature_col.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim).copy()  # writable
        ct = ct.sort_by("label")
        emb_col = ct.column("embedding").combine_chunks()
        emb = emb_col.flatten().to_numpy(zero_copy_only=False).reshape(-1, emb_col.type.list_size)
        ft.column("label"), ct.column("name"), st.column("split"), st.column("row")
    except (KeyError, AttributeError, ValueError, pa.ArrowException) as exc:
        raise DataError(f"bundle {d}: a file lacks a column or has the wrong type ({exc})") from None
    split_col = np.asarray(st.column("split").to_pylist())
    rows = st.column("row").to_numpy().astype(np.int64)
    _check_counts(d, meta, {"n_classes": ("classes.parquet", ct.num_rows),
                            "n_images": ("features.parquet", ft.num_rows)})
    bench = Benchmark(
        name=meta["name"],
        features=feats,
        labels=ft.column("label").to_numpy().astype(np.int64),
        class_names=ct.column("name").to_pylist(),
        class_embeddings=emb.astype(np.float32),
        splits={s: rows[split_col == s] for s in SPLITS},
        image_ids=ft.column("image_id").to_pylist(),
        info={**meta.get("info", {}), "bundle": str(d), "bundle_sha256": meta.get("sha256", {}),
              "files_sha256": files},
    )
    return bench.validate()


def _read_meta(d: Path, meta_path: Path) -> dict[str, Any]:
    """``benchmark.json`` as a mapping with a ``name`` and a ``sha256`` table (one line otherwise)."""
    import json

    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"bundle {d}: cannot read benchmark.json: {' '.join(str(exc).split())}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("sha256"), dict) or not isinstance(meta.get("name"), str):
        raise DataError(f"bundle {d}: benchmark.json is not a bundle record (needs 'name' and a 'sha256' table)")
    return meta


def _check_counts(d: Path, meta: dict[str, Any], actual: dict[str, tuple[str, int]]) -> None:
    """The counts ``benchmark.json`` records (classes, images) against the files' row counts."""
    for key, (fname, n) in actual.items():
        if key in meta and meta[key] != n:
            raise DataError(f"bundle {d}: {fname} has {n} rows but benchmark.json records {key} = {meta[key]}")


def _read_parquet(d: Path, fname: str) -> pa.Table:
    """A bundle's parquet file; a truncated or random-bytes file is one :class:`DataError` line."""
    try:
        return pq.read_table(d / fname)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"bundle {d}: cannot read {fname} as parquet ({' '.join(str(exc).split())})") from None


def resolve_benchmark(name_or_path: str) -> Benchmark:
    """A benchmark by name (``flo`` is bundled; xlsa17 names need ``$ZSL_SCALE_XLSA17``) or by path.

    A path may be a bundle directory or an xlsa17 directory holding ``res101.mat`` + ``att_splits.mat``.
    """
    path = Path(name_or_path)
    if path.exists():
        if (path / "benchmark.json").is_file():
            return load_bundle(path)
        if (path / "att_splits.mat").is_file():
            res = next((path / f for f in ("res101.mat", "res101_efflite0.mat") if (path / f).is_file()), None)
            if res is None:
                raise DataError(f"{path}: has att_splits.mat but no res101.mat")
            return load_xlsa17(res, path / "att_splits.mat")
        raise DataError(f"{path} is neither a benchmark bundle nor an xlsa17 folder")
    key = name_or_path.lower()
    if key in PACKAGED:
        return load_bundle(PACKAGED[key])
    if key in XLSA17_NAMES:
        root = os.environ.get("ZSL_SCALE_XLSA17")
        if not root:
            raise DataError(
                f"benchmark {key!r} needs the xlsa17 release: set ZSL_SCALE_XLSA17 to the folder holding "
                f"{key.upper()}/res101.mat and {key.upper()}/att_splits.mat, or pass that folder as a path"
            )
        return resolve_benchmark(str(Path(root) / key.upper()))
    known = sorted(set(PACKAGED) | set(XLSA17_NAMES))
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(known)}"
    raise DataError(f"unknown benchmark {name_or_path!r} (not a path either){hint}")
