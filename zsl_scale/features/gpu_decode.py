"""JPEG decoding on the GPU (``--decode gpu``): nvJPEG through ``torchvision.io.decode_jpeg``, batched.

Why: on a GPU node extraction is bound by JPEG decoding on the host CPUs (docs/scale.md), not by the
network. Each model actor reads its chunk's bytes, decodes every JPEG of the chunk in one batched call on
its GPU, and resizes / crops there (``interpolate`` with antialias, the same size and offset rounding as
the PIL path). Anything the GPU path cannot take — a non-JPEG file, a JPEG nvJPEG rejects (CMYK,
some progressive or lossless files), or a batch call that fails as a whole (then images are retried one
by one) — is decoded by the CPU path (:func:`features.inputs.decode_image`), so every image the CPU path
accepts is still extracted, and bad files are skipped with the same reasons. The size limits are checked
from the header before either decoder runs.

Tolerance: the GPU path's pixels differ from PIL's resize by rounding (antialiased bicubic, another
implementation): mean 0.1 uint8 level, max 2, and EfficientNet-Lite0 features at cosine ≥ 0.9993 on five
re-sized photos (tests/features/test_gpu_decode.py asserts ≥ 0.99; it runs the resize on CPU tensors).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from zsl_scale.core import ConfigError
from zsl_scale.features.backbones import Preprocess
from zsl_scale.features.inputs import check_image_size, decode_errors, decode_image, read_bytes, skip_reason

# (list of 1-d uint8 tensors of JPEG bytes, device) -> list of uint8 [3, H, W] RGB tensors on that device
Decoder = Callable[[list[torch.Tensor], torch.device], list[torch.Tensor]]


def jpeg_decoder() -> Decoder:
    """Batched ``torchvision.io.decode_jpeg`` to RGB, or a one-line :class:`ConfigError` where torchvision
    does not import (it is not a dependency: PyPI's torchvision does not import beside torch 2.13.0 CPU)."""
    try:
        from torchvision.io import ImageReadMode, decode_jpeg
    except Exception as exc:  # ImportError, or a torchvision built for another torch
        raise ConfigError(f"--decode gpu needs torchvision working beside torch {torch.__version__} "
                          f"(import failed: {exc}); use --decode auto") from exc

    def decode(data: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
        return decode_jpeg(data, mode=ImageReadMode.RGB, device=device)

    return decode


def _header_ok(data: bytes) -> None:
    """Size limits from the header (no decoding): the same bounds as the CPU path."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        check_image_size(*img.size)


def resize_crop(chw: torch.Tensor, spec: Preprocess) -> torch.Tensor:
    """uint8 ``[3, H, W]`` (any device) → uint8 ``[crop, crop, 3]``: short side to ``resize``, centre crop,
    with :func:`features.backbones.preprocess_image`'s size and offset rounding."""
    _, h, w = chw.shape
    new_w, new_h = (spec.resize, int(spec.resize * h / w)) if w <= h else (int(spec.resize * w / h), spec.resize)
    x = chw[None].float()
    if (new_w, new_h) != (w, h):
        x = torch.nn.functional.interpolate(x, size=(new_h, new_w), mode=spec.interpolation, antialias=True,
                                            align_corners=False)
    top, left = round((new_h - spec.crop) / 2.0), round((new_w - spec.crop) / 2.0)
    x = x[0, :, top : top + spec.crop, left : left + spec.crop]
    return x.round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0)


def decode_rows_gpu(rows: list[list[Any]], spec: Preprocess, device: torch.device,
                    decoder: Decoder) -> tuple[torch.Tensor, np.ndarray, list[str]]:
    """Decode one chunk: ``(pixels [n, crop, crop, 3] uint8 on device, ok [n], errors [n])``.

    Failed slots are zeros with ``ok=False`` and the reason in ``errors``, as in ``actor.decode_chunk``.
    """
    n, size = len(rows), spec.crop
    pixels = torch.zeros((n, size, size, 3), dtype=torch.uint8, device=device)
    ok, errors = np.zeros(n, dtype=bool), [""] * n
    jpegs: dict[int, bytes] = {}
    cpu: dict[int, bytes] = {}
    for i, (_, path, offset, size_b) in enumerate(rows):
        try:
            data = read_bytes(str(path), int(offset), int(size_b))
            _header_ok(data)
        except decode_errors() as exc:  # what a bad input raises; anything else is a bug and fails the job
            errors[i] = skip_reason(exc)
            continue
        (jpegs if data[:2] == b"\xff\xd8" else cpu)[i] = data
    for i, img in _gpu_decode(jpegs, device, decoder).items():
        if img is None:
            cpu[i] = jpegs[i]
            continue
        pixels[i], ok[i] = resize_crop(img, spec), True
    for i, data in cpu.items():
        try:
            pixels[i] = torch.from_numpy(decode_image(data, spec).copy()).to(device)  # PIL arrays are read-only
            ok[i] = True
        except decode_errors() as exc:
            errors[i] = skip_reason(exc)
    return pixels, ok, errors


def _gpu_decode(jpegs: dict[int, bytes], device: torch.device, decoder: Decoder) -> dict[int, torch.Tensor | None]:
    """One batched call; if it fails, each image alone; ``None`` where the GPU could not decode it."""
    if not jpegs:
        return {}
    keys = list(jpegs)
    tensors = [torch.frombuffer(bytearray(jpegs[k]), dtype=torch.uint8) for k in keys]
    try:
        return dict(zip(keys, decoder(tensors, device), strict=True))
    except Exception:  # nvJPEG errors (RuntimeError, ...); one bad image fails the batch: retry each alone
        out: dict[int, torch.Tensor | None] = {}
        for k, t in zip(keys, tensors, strict=True):
            try:
                out[k] = decoder([t], device)[0]
            except Exception:
                out[k] = None
        return out
