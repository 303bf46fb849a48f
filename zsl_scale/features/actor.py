"""The Ray side of extraction: the backbone actor (loads the model once, writes whole shards) and decode tasks.

One actor call is one shard: the actor decodes the shard's chunks (itself, or through CPU decode tasks
whose pixels reach it through the object store), runs one forward pass per chunk, writes the parquet
shard to the output folder (temp file + rename) and hashes it. The driver receives only the shard's
record (rows, bytes, sha256, class counts, skipped images), so no feature byte crosses the driver.
"""


from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np

from zsl_scale.features.backbones import Preprocess, get_backbone
from zsl_scale.features.inputs import load_image

# decode tasks an actor keeps in flight ahead of its forward pass (``decode: tasks``): enough to overlap
# decoding with the model, few enough that a shard's pixels never pile up in the object store
DECODE_AHEAD = 2


def _decode_memory(preprocess: Preprocess, batch_size: int) -> int:
    # ~240 MiB measured for a decode worker process (Python, numpy, PIL, pyarrow) + the chunk's pixels
    return 2 * batch_size * preprocess.crop * preprocess.crop * 3 + (256 << 20)


def decode_chunk(
    rows: list[list[Any]], preprocess: Preprocess, batch_size: int
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read + decode + resize one chunk of :meth:`ImageRef.to_row` rows into a padded uint8 array.

    Returns ``(pixels [batch_size, crop, crop, 3], ok [batch_size], errors)``: a failed image leaves a
    zero slot with ``ok=False`` and the reason in ``errors``.
    """
    size = preprocess.crop
    pixels = np.zeros((batch_size, size, size, 3), dtype=np.uint8)
    ok = np.zeros(batch_size, dtype=bool)
    errors = []
    for i, row in enumerate(rows):
        img, err = load_image(row, preprocess)
        if img is not None:
            pixels[i], ok[i] = img, True
        errors.append(err)
    return pixels, ok, errors


class FeatureActor:
    """Ray Data actor: loads the backbone once, then turns one shard per call into a parquet file.

    Only the images that decoded are forwarded (the padded slots are not), one forward pass per chunk of
    ``batch_size`` images in shard order, so the forward batch of every image is fixed by the shard plan.
    With ``decode_task`` (``{"num_cpus", "memory"}``) chunks are decoded by CPU tasks, ``DECODE_AHEAD``
    in flight (the GPU layout); without it the actor decodes them itself (the CPU-only layout, where a
    separate decode stage would compete with the actors for the same cores).
    """

    def __init__(self, backbone: str, weights: str | None, dtype: str, threads: int, device: str = "auto",
                 batch_size: int = 32, out_dir: str = "", decode_task: dict[str, Any] | None = None,
                 precision: dict[str, str] | None = None, allow_emulated: bool = False, gpu_decode: bool = False):
        import torch

        from zsl_scale.core import InferencePrecision, resolve_device, resolve_precision

        torch.set_num_threads(threads)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        self.device = resolve_device(device)
        chosen = InferencePrecision(**(precision or {}))
        # the driver resolved it; this node's own CPU / GPU must support it too (clusters can be mixed)
        resolve_precision(chosen.precision, self.device.type, chosen.memory_format, allow_emulated)
        self.precision = chosen
        self.spec = get_backbone(backbone)
        self.model = chosen.prepare(self.spec.load(weights, self.device))
        self.dtype = np.dtype(dtype)
        self.batch_size = batch_size
        self.out_dir = out_dir
        self.decode_task = decode_task
        self.decoder = None
        if gpu_decode:  # --decode gpu: nvJPEG on this actor's GPU (features.gpu_decode)
            from zsl_scale.features.gpu_decode import jpeg_decoder

            self.decoder = jpeg_decoder()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from zsl_scale.core import write_shard_file

        index = int(batch["shard"][0])
        shard = json.loads(str(batch["refs"][0]))  # {"rows": [ImageRef.to_row()], "wnids": [...]}
        rows, wnids = shard["rows"], shard["wnids"]
        chunks = [rows[i : i + self.batch_size] for i in range(0, len(rows), self.batch_size)]
        keep, feats, skipped = [], [], []
        for c, (pixels, ok, errors) in enumerate(self._decoded(chunks)):
            feats.append(self._forward(pixels, ok)[ok])
            for i, row in enumerate(chunks[c]):
                if ok[i]:
                    keep.append(c * self.batch_size + i)
                else:
                    skipped.append({"image_id": row[0], "path": row[1], "error": errors[i]})
        kept_wnids = [wnids[k] for k in keep]
        written = write_shard_file(self.out_dir, index, self._table([rows[k][0] for k in keep], kept_wnids, feats))
        info = {"images": len(rows), "classes": dict(sorted(Counter(kept_wnids).items())), "skipped": skipped}
        return {"shard": batch["shard"], "record": np.array([json.dumps({**written.model_dump(), **info})])}

    def _decoded(self, chunks: list[list[Any]]) -> Iterator[tuple[np.ndarray, np.ndarray, list[str]]]:
        """The shard's chunks decoded, in order: here, on this actor's GPU, or by CPU tasks kept
        ``DECODE_AHEAD`` in flight."""
        if self.decoder is not None:
            from zsl_scale.features.gpu_decode import decode_rows_gpu

            for rows in chunks:
                pixels, ok, errors = decode_rows_gpu(rows, self.spec.preprocess, self.device, self.decoder)
                yield pixels, ok, errors  # pixels: a uint8 tensor on the GPU, one slot per row
            return
        if self.decode_task is None:
            for rows in chunks:
                yield decode_chunk(rows, self.spec.preprocess, self.batch_size)
            return
        import ray

        task = ray.remote(decode_chunk).options(num_returns=3, **self.decode_task)
        pending = [task.remote(rows, self.spec.preprocess, self.batch_size) for rows in chunks[:DECODE_AHEAD]]
        for c in range(len(chunks)):
            refs = pending.pop(0)
            if c + DECODE_AHEAD < len(chunks):
                pending.append(task.remote(chunks[c + DECODE_AHEAD], self.spec.preprocess, self.batch_size))
            pixels, ok, errors = ray.get(refs)
            yield pixels, ok, errors

    def _forward(self, pixels: Any, ok: np.ndarray) -> np.ndarray:
        """Features ``[len(ok), dim]`` of one chunk; one forward pass over its decoded images only, in the
        resolved precision. ``pixels``: uint8 NHWC, numpy (CPU decode) or a tensor on the device (GPU decode)."""
        import torch

        feats = np.zeros((len(ok), self.spec.dim), dtype=self.dtype)
        idx = np.flatnonzero(ok)
        if idx.size:
            with torch.inference_mode():
                if isinstance(pixels, torch.Tensor):
                    x = pixels[torch.from_numpy(idx).to(pixels.device)]
                else:
                    x = torch.from_numpy(np.ascontiguousarray(pixels[idx])).to(self.device)
                out = self.model.features(self.precision.prepare(self.spec.preprocess.normalize(x)),
                                          self.precision.low_precision(self.device.type))
            feats[idx] = out.float().cpu().numpy().astype(self.dtype)
        return feats

    def _table(self, ids: list[str], wnids: list[str], feats: list[np.ndarray]) -> Any:
        import pyarrow as pa

        from zsl_scale.core import vector_array

        matrix = np.concatenate(feats) if feats else np.zeros((0, self.spec.dim), dtype=self.dtype)
        return pa.table({
            "image_id": pa.array(ids, pa.string()),
            "wnid": pa.array(wnids, pa.string()),
            "feature": vector_array(matrix.astype(self.dtype, copy=False)),
        })
