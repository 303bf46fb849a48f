"""The Ray side of extraction: decode tasks (CPU) and the backbone actor (loads the model once)."""


from __future__ import annotations

import json

import numpy as np

from zsl_scale.features.backbones import Preprocess, get_backbone
from zsl_scale.features.inputs import load_image


def _decode_memory(preprocess: Preprocess, batch_size: int) -> int:
    # ~240 MiB measured for a decode worker process (Python, numpy, PIL, pyarrow) + the chunk's pixels
    return 2 * batch_size * preprocess.crop * preprocess.crop * 3 + (256 << 20)


def decode_chunk(
    batch: dict[str, np.ndarray], preprocess: Preprocess, batch_size: int
) -> dict[str, np.ndarray]:
    """Ray Data CPU stage: read + decode + resize one chunk into a padded uint8 array.

    Failed images leave a zero slot with ``ok=False`` and the reason in ``errors``.
    """
    rows = json.loads(batch["refs"][0])
    size = preprocess.crop
    pixels = np.zeros((1, batch_size, size, size, 3), dtype=np.uint8)
    ok = np.zeros((1, batch_size), dtype=bool)
    errors = []
    for i, row in enumerate(rows):
        img, err = load_image(row, preprocess)
        if img is not None:
            pixels[0, i], ok[0, i] = img, True
        errors.append(err)
    return {
        "shard": batch["shard"],
        "chunk": batch["chunk"],
        "pixels": pixels,
        "ok": ok,
        "errors": np.array([json.dumps(errors)]),
    }


class FeatureActor:
    """Ray Data actor: loads the backbone once, then runs one forward pass per chunk.

    Only the images that decoded are forwarded (the padded slots are not), in chunk order, so the
    forward batch of every image is fixed by the shard plan. A chunk that arrives as image references
    (``refs``, no ``pixels``) is decoded here first, by the same :func:`decode_chunk`: the CPU-only
    layout, where a separate decode stage would compete with the actors for the same cores.
    """

    def __init__(self, backbone: str, weights: str | None, dtype: str, threads: int, device: str = "auto",
                 batch_size: int = 32):
        import torch

        from zsl_scale.core import resolve_device

        torch.set_num_threads(threads)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        self.device = resolve_device(device)
        self.spec = get_backbone(backbone)
        self.model = self.spec.load(weights, self.device)
        self.dtype = np.dtype(dtype)
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        if "pixels" not in batch:
            batch = decode_chunk(batch, self.spec.preprocess, self.batch_size)
        ok = batch["ok"]
        feats = np.zeros((1, ok.shape[1], self.spec.dim), dtype=self.dtype)
        idx = np.flatnonzero(ok[0])
        if idx.size:
            with torch.inference_mode():
                x = torch.from_numpy(np.ascontiguousarray(batch["pixels"][0][idx])).to(self.device)
                out = self.model.features(self.spec.preprocess.normalize(x))
            feats[0, idx] = out.float().cpu().numpy().astype(self.dtype)
        return {"shard": batch["shard"], "chunk": batch["chunk"], "ok": ok, "errors": batch["errors"],
                "features": feats}
