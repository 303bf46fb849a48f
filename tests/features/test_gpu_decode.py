"""``--decode gpu``: the CPU fallback and the resize tolerance, tested on CPU with a stand-in for nvJPEG.

No GPU is lent to most sessions and torchvision is not installable beside torch 2.13.0 CPU, so the GPU
decoder itself is replaced by PIL (decoded to the same uint8 [3, H, W] tensors) that refuses chosen
images the way nvJPEG refuses e.g. CMYK files; benchmarks/gpu_check.py runs the real one.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zsl_scale.features.backbones import get_backbone
from zsl_scale.features.gpu_decode import decode_rows_gpu
from zsl_scale.features.inputs import decode_image, list_images


def _pil_decoder(refuse: set[bytes], calls: list[int]):
    def decode(data: list[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
        calls.append(len(data))
        out = []
        for t in data:
            raw = t.numpy().tobytes()
            if raw in refuse:
                raise RuntimeError("nvjpeg: unsupported JPEG")
            rgb = np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))
            out.append(torch.from_numpy(rgb.copy()).permute(2, 0, 1).to(device))
        return out
    return decode


def test_gpu_decode_falls_back_to_the_cpu_and_matches_it_within_tolerance(tmp_path: Path, imagenet_samples_dir):
    spec = get_backbone("efficientnet_lite0")
    _, refs = list_images(imagenet_samples_dir)
    jpegs = []  # 5 real photos, re-saved at sizes that need a resize (the samples' short side is already 256)
    for k, r in enumerate(refs[::200]):
        jpegs.append(tmp_path / f"{k}.jpg")
        img = Image.open(r.path).convert("RGB")
        img.resize((300 + 37 * k, 400 - 23 * k), Image.BICUBIC).save(jpegs[-1], quality=95)
    png = tmp_path / "x.png"
    Image.open(jpegs[0]).convert("RGB").save(png)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    paths = [*jpegs, png, bad]
    rows = [[p.stem, str(p), -1, -1] for p in paths]
    refuse, calls = {jpegs[1].read_bytes()}, []

    pixels, ok, errors = decode_rows_gpu(rows, spec.preprocess, torch.device("cpu"), _pil_decoder(refuse, calls))

    assert ok.tolist() == [True] * 6 + [False] and errors[6].startswith("UnidentifiedImageError")
    assert calls == [5, 1, 1, 1, 1, 1]  # the 5 JPEGs in one batch, which failed, then one by one (the fake
    # JPEG never reaches the decoder: its header does not parse)
    cpu = np.stack([decode_image(p.read_bytes(), spec.preprocess) for p in paths[:6]])
    got = pixels[:6].numpy()
    assert np.array_equal(got[1], cpu[1]) and np.array_equal(got[5], cpu[5])  # refused JPEG and PNG: CPU path
    diff = np.abs(got.astype(np.int16) - cpu.astype(np.int16))
    print(f"GPU-path resize vs PIL: mean |Δ| {diff.mean():.3f}, max {diff.max()} (uint8 levels)")
    assert diff.mean() < 1.5 and diff[[0, 2, 3, 4]].mean() > 0  # another resize, not a copy of the CPU one
    model = spec.load()
    with torch.inference_mode():
        a = model.features(spec.preprocess.normalize(torch.from_numpy(got))).double()
        b = model.features(spec.preprocess.normalize(torch.from_numpy(cpu))).double()
    cos = ((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))).numpy()
    print(f"features, GPU-path vs CPU pixels: min cosine {cos.min():.5f}")
    assert cos.min() >= 0.99


def test_decode_gpu_is_refused_with_one_line_where_it_cannot_run(tmp_path, capsys, imagenet_samples_dir):
    from zsl_scale.cli import main

    for extra in (["--device", "cpu"], []):
        capsys.readouterr()
        with pytest.raises(SystemExit) as exc:
            main(["features", "extract", str(imagenet_samples_dir), "-o", str(tmp_path / "o"), "--decode", "gpu",
                  *extra])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.count("\n") == 1
        assert any(m in err for m in ("not with --device cpu", "needs torchvision", "needs a GPU")), err
