"""Min-max scaling of image features for the ImageNet (streaming) path, fit on training shards only.

docs/design.md §1: features are min-max scaled per dimension with statistics of the *training* split only (the
authors' early code fit a scaler on each test split — a leak). The small-benchmark path fits the same
class in memory (:meth:`FeatureScaler.fit`); the streaming path fits it over shards:

    x' = (x − min) / (max − min)          (a constant dimension, max = min, is divided by 1)

* **Fit**: :func:`fit_feature_scaler` makes one streaming pass over the training feature shards with
  pyarrow, ``batch_rows`` rows at a time (memory: one batch + two D-vectors, independent of the
  dataset size). It is not read from the features manifest because the training set is usually a
  *subset* of an extracted feature set (held-out classes removed), and per-class statistics in the
  manifest would cost 2·D floats per class (~180 MB for 21.8K classes at D = 2048).
* **Store**: the statistics travel with the model: in every distributed checkpoint (``state.pt``,
  key ``scaler``, and in the run's fingerprint) and in the exported ``vae.pt`` (``extra.scaler_min`` /
  ``extra.scaler_scale``, the keys :func:`zsl_scale.protocol.evaluate.save_trained` uses too).
* **Apply**: wherever image features enter the model — streaming training, latent generation (μ of
  test images, noisy seen-class latents) and the classifier's latent bank — through :meth:`transform`
  (numpy) or :meth:`transform_torch` (on the model's device); both compute ``(x − lo) / scale`` in
  float32, so they give identical numbers. Test features outside the training range are *not*
  clipped (values < 0 or > 1 are kept), like the authors' code.

A model checkpoint without statistics cannot encode image features correctly; :func:`scaler_from_extra`
refuses it with one clear line instead of silently encoding unscaled features.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from zsl_scale.core import DataError, load_torch_file, sha256_bytes

MIN_KEY, SCALE_KEY, ROWS_KEY = "scaler_min", "scaler_scale", "scaler_rows"


@dataclass(frozen=True)
class FeatureScaler:
    """Per-dimension min-max statistics: ``x' = (x − lo) / scale`` with ``scale = max − min`` (1 if 0)."""

    lo: np.ndarray  # [D] float32
    scale: np.ndarray  # [D] float32, > 0
    rows: int = 0  # training rows the statistics were fit on (provenance only)

    def __post_init__(self) -> None:
        lo = np.ascontiguousarray(self.lo, dtype=np.float32).reshape(-1)
        scale = np.ascontiguousarray(self.scale, dtype=np.float32).reshape(-1)
        if lo.shape != scale.shape:
            raise DataError(f"feature scaler has {lo.size} minima but {scale.size} scales")
        if not (np.isfinite(lo).all() and np.isfinite(scale).all() and (scale > 0).all()):
            raise DataError("feature scaler statistics are not finite positive numbers")
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "scale", scale)

    @property
    def dim(self) -> int:
        return int(self.lo.shape[0])

    @classmethod
    def from_min_max(cls, lo: np.ndarray, hi: np.ndarray, rows: int = 0) -> FeatureScaler:
        span = np.asarray(hi, np.float32) - np.asarray(lo, np.float32)
        return cls(lo, np.where(span > 0, span, np.float32(1.0)), rows)

    @classmethod
    def fit(cls, x: Any) -> FeatureScaler:
        """Statistics of the rows of an in-memory ``[n, D]`` array or tensor (the small benchmarks)."""
        x = np.asarray(x.cpu() if hasattr(x, "cpu") else x, dtype=np.float32)
        return cls.from_min_max(x.min(axis=0), x.max(axis=0), int(x.shape[0]))

    def __call__(self, x: Any) -> Any:
        """:meth:`transform_torch` for a tensor, :meth:`transform` for anything else."""
        return self.transform_torch(x) if hasattr(x, "device") else self.transform(x)

    def check_dim(self, dim: int, what: str) -> None:
        """A :class:`DataError` when ``what`` has another feature width than the statistics."""
        if dim != self.dim:
            raise DataError(f"{what} is {dim}-d but the model's feature scaler was fit on {self.dim}-d features")

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Scaled float32 copy of ``x`` ``[n, D]`` (float16 input is widened first)."""
        x = np.asarray(x)
        self.check_dim(x.shape[-1], "input feature")
        return (x.astype(np.float32) - self.lo) / self.scale

    def torch_stats(self, device: Any = "cpu") -> tuple[Any, Any]:
        """(lo, scale) as float32 tensors on ``device``: move them once, then call :meth:`transform_torch`."""
        import torch

        return torch.from_numpy(self.lo).to(device), torch.from_numpy(self.scale).to(device)

    def transform_torch(self, x: Any, stats: tuple[Any, Any] | None = None) -> Any:
        """The same as :meth:`transform` on a torch tensor, on its device (float32).

        ``stats`` are :meth:`torch_stats` already on that device (saves two copies per call in a loop).
        """
        import torch

        self.check_dim(int(x.shape[-1]), "input feature")
        lo, scale = stats if stats is not None else self.torch_stats(x.device)
        return (x.to(torch.float32) - lo) / scale

    def to_extra(self) -> dict[str, Any]:
        """JSON/pickle-friendly statistics (the keys of a ``vae.pt``'s ``extra`` and a checkpoint's ``scaler``)."""
        return {MIN_KEY: self.lo.tolist(), SCALE_KEY: self.scale.tolist(), ROWS_KEY: self.rows}

    def fingerprint(self) -> str:
        """sha256 of the statistics (part of a training run's fingerprint)."""
        return sha256_bytes(self.lo.tobytes() + self.scale.tobytes())


def scaler_from_extra(extra: Mapping[str, Any] | None, where: str) -> FeatureScaler:
    """The statistics stored by :meth:`FeatureScaler.to_extra`; a :class:`DataError` when absent."""
    if not extra or MIN_KEY not in extra or SCALE_KEY not in extra:
        raise DataError(f"{where} has no feature-scaler statistics (trained before features were min-max "
                        "scaled); retrain it with this version")
    return FeatureScaler(np.asarray(extra[MIN_KEY]), np.asarray(extra[SCALE_KEY]), int(extra.get(ROWS_KEY, 0)))


def load_model_scaler(path: str | Path) -> FeatureScaler:
    """The statistics in a model checkpoint written by :func:`zsl_scale.cada.train.save_model`."""
    payload = load_torch_file(path, "model checkpoint")
    extra = payload.get("extra") if isinstance(payload, dict) else None
    return scaler_from_extra(extra, f"model checkpoint {path}")


def fit_feature_scaler(files: Iterable[str | Path], dim: int, batch_rows: int = 65_536) -> FeatureScaler:
    """Min and max of every dimension over all rows of ``files`` (parquet, ``feature`` column), streamed.

    Raises :class:`DataError` for no rows or a NaN/infinite feature (it would poison every scaled value).
    """
    lo = np.full(dim, np.inf, np.float32)
    hi = np.full(dim, -np.inf, np.float32)
    rows = 0
    for path in files:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=["feature"]):
            col = batch.column(0)
            if len(col) == 0:
                continue
            if isinstance(col, pa.ChunkedArray):
                col = col.combine_chunks()
            x = col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), dim)
            if not np.isfinite(x).all():
                raise DataError(f"feature shard {Path(path).name} contains NaN or infinite values")
            np.minimum(lo, x.min(axis=0), out=lo, casting="unsafe")
            np.maximum(hi, x.max(axis=0), out=hi, casting="unsafe")
            rows += len(col)
    if rows == 0:
        raise DataError("no training feature rows to fit the feature scaler on")
    return FeatureScaler.from_min_max(lo, hi, rows)
