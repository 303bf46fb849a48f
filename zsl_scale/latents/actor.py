"""The Ray side of latent generation: an actor that loads the CADA-VAE once and encodes one unit per call.

It writes the unit's shard itself (temp file + rename, sha256) and returns only the shard's record, so
latents never travel through the driver, which writes just the manifest.

Why every encoder call sees a batch fixed by the data alone: :mod:`zsl_scale.latents.generate`.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from zsl_scale.core import (
    vector_array,
    vectors,
    write_shard_file,
)


class LatentActor:
    """Ray Data actor: loads the CADA-VAE once; encodes and writes one unit (= one output shard) per call."""

    def __init__(self, model_path: str, class_embeddings: str | None, classes: list[str] | None,
                 threads: int, device: str, encode_batch: int, out_dir: str, precision: str = "fp32",
                 allow_emulated: bool = False):
        import torch

        from zsl_scale.cada import load_model
        from zsl_scale.core import resolve_device, resolve_precision

        torch.set_num_threads(threads)
        self.device = resolve_device(device)
        # resolved by the driver; this node must support it too (its CPU may lack bf16 units)
        self.precision = resolve_precision(precision, self.device.type, "contiguous", allow_emulated)
        self.model, _ = load_model(model_path, self.device)
        self.scaler = None
        if class_embeddings is None:  # image features: scaled like the VAE's training features
            from zsl_scale.cada import load_model_scaler

            self.scaler = load_model_scaler(model_path)
        self.encode_batch = encode_batch
        self.out_dir = out_dir
        self.classes = set(classes) if classes is not None else None
        self.table = None
        if class_embeddings is not None:
            from zsl_scale.distributed import load_class_table

            self.table = load_class_table(class_embeddings)

    def _encode(self, name: str, x: np.ndarray, eps: np.ndarray | None) -> np.ndarray:
        import torch

        out = []
        with torch.inference_mode(), self.precision.autocast(self.device.type):
            for i in range(0, len(x), self.encode_batch):
                xb = torch.from_numpy(np.array(x[i : i + self.encode_batch], np.float32))  # writable copy
                if name == "image":
                    assert self.scaler is not None
                    xb = self.scaler.transform_torch(xb)
                mu, logvar = self.model.encode(name, xb.to(self.device))
                if eps is not None:
                    e = torch.from_numpy(eps[i : i + self.encode_batch].astype(np.float32)).to(self.device)
                    mu = mu + self.model.std(logvar) * e[:, None]
                out.append(mu.float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.model.cfg.latent_dim), np.float32)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Encode one unit and write it as shard ``batch["shard"]``; return only the shard's record (JSON)."""
        unit = json.loads(batch["unit"][0])
        table = getattr(self, f"_{unit['kind']}")(unit)
        written = write_shard_file(self.out_dir, int(batch["shard"][0]), table)
        info = {"classes": len(set(table.column("wnid").to_pylist()))}
        return {"shard": batch["shard"], "record": np.array([json.dumps({**written.model_dump(), **info})])}

    def _mu(self, unit: dict[str, Any]) -> pa.Table:
        t = pq.read_table(unit["path"], columns=["image_id", "wnid", "feature"])
        z = self._encode("image", vectors(t.column("feature")), None)  # whole shard: batches fixed by the shard
        if self.classes is not None:
            keep = np.array([w in self.classes for w in t.column("wnid").to_pylist()], dtype=bool)
            t, z = t.filter(pa.array(keep, pa.bool_())), z[keep]
        return _table(t.column("image_id"), t.column("image_id"), t.column("wnid"), z)

    def _image_samples(self, unit: dict[str, Any]) -> pa.Table:
        ids, wnids, eps = [], [], []
        where = []  # (file, row) of every sample, in output order
        for w, rows, e in unit["items"]:
            ids += [f"{w}#{k:05d}" for k in range(len(rows))]
            wnids += [w] * len(rows)
            where += rows
            eps += e
        loc = np.asarray(where, dtype=np.int64).reshape(-1, 2)
        src: list[Any] = [None] * len(loc)
        feats: np.ndarray | None = None
        for f in np.unique(loc[:, 0]).tolist():  # read each feature shard once
            pos = np.flatnonzero(loc[:, 0] == f)
            t = pq.read_table(unit["files"][f], columns=["image_id", "feature"]).take(pa.array(loc[pos, 1]))
            x = vectors(t.column("feature"))
            feats = np.zeros((len(loc), x.shape[1]), x.dtype) if feats is None else feats
            feats[pos] = x
            for p, image_id in zip(pos.tolist(), t.column("image_id").to_pylist(), strict=True):
                src[p] = image_id
        assert feats is not None
        eps_all, z, start = np.asarray(eps), [], 0
        for _, rows, _ in unit["items"]:  # one encoder call per class: its batch never depends on the others
            z.append(self._encode("image", feats[start : start + len(rows)], eps_all[start : start + len(rows)]))
            start += len(rows)
        return _table(ids, src, wnids, np.concatenate(z))

    def _class_samples(self, unit: dict[str, Any]) -> pa.Table:
        assert self.table is not None
        import torch

        index = {w: i for i, w in enumerate(self.table.wnids)}
        ids, wnids, z = [], [], []
        with torch.inference_mode(), self.precision.autocast(self.device.type):
            for w, e in unit["items"]:
                ids += [f"{w}#{k:05d}" for k in range(len(e))]
                wnids += [w] * len(e)
                # each class embedding is encoded alone ([1, D]), so its latents never depend on its neighbours
                x = torch.from_numpy(np.array(self.table.vectors[index[w] : index[w] + 1], np.float32))
                mu, logvar = self.model.encode("class", x.to(self.device))
                eps = torch.from_numpy(np.asarray(e, np.float32)).to(self.device)
                z.append((mu + self.model.std(logvar) * eps[:, None]).float().cpu().numpy())
        return _table(ids, wnids, wnids, np.concatenate(z))


def _table(ids: Any, src: Any, wnids: Any, z: np.ndarray) -> pa.Table:
    return pa.table({
        "image_id": pa.array(ids, pa.string()) if isinstance(ids, list) else ids.cast(pa.string()),
        "source_id": pa.array(src, pa.string()) if isinstance(src, list) else src.cast(pa.string()),
        "wnid": pa.array(wnids, pa.string()) if isinstance(wnids, list) else wnids.cast(pa.string()),
        "latent": vector_array(z.astype(np.float32)),
    })
