"""``--precision``: auto resolution, the emulated-bf16 refusal, no mixing in one set, bf16 features close to fp32."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from zsl_scale.core import ConfigError, InferencePrecision, check_resume_precision, precision_header
from zsl_scale.core import precision as precision_mod
from zsl_scale.core.precision import ALLOW_EMULATED_ENV, resolve_precision


def _cpu(monkeypatch: pytest.MonkeyPatch, native: bool) -> None:
    monkeypatch.setattr(precision_mod, "cpu_has_native_bf16", lambda: native)
    monkeypatch.delenv(ALLOW_EMULATED_ENV, raising=False)


@pytest.mark.parametrize(("native", "want"), [(True, "bf16"), (False, "fp32")])
def test_auto_is_bf16_only_on_cpus_with_bf16_units(monkeypatch, native, want):
    _cpu(monkeypatch, native)
    assert resolve_precision("auto", "cpu") == InferencePrecision(want, "channels_last")
    assert resolve_precision("fp32", "cpu", "contiguous") == InferencePrecision("fp32", "contiguous")


@pytest.mark.parametrize(("bf16_gpu", "want"), [(True, "bf16"), (False, "fp16")])
def test_auto_on_cuda_is_bf16_where_the_gpu_has_it_else_fp16(monkeypatch, bf16_gpu, want):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16_gpu)
    assert resolve_precision("auto", "cuda").precision == want
    assert resolve_precision("fp16", "cuda").precision == "fp16"
    if not bf16_gpu:
        with pytest.raises(ConfigError, match="no bf16 support"):
            resolve_precision("bf16", "cuda")


def test_emulated_bf16_and_cpu_fp16_are_refused_with_one_line(tmp_path, capsys, monkeypatch, imagenet_samples_dir):
    from zsl_scale.cli import main

    _cpu(monkeypatch, native=False)
    out = tmp_path / "out"
    for precision, message in (("bf16", "would be emulated"), ("fp16", "fp16 is for CUDA")):
        capsys.readouterr()
        with pytest.raises(SystemExit) as exc:
            main(["features", "extract", str(imagenet_samples_dir), "-o", str(out), "--device", "cpu",
                  "--precision", precision])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not out.exists()  # refused before anything was written
    _cpu(monkeypatch, native=True)
    assert resolve_precision("bf16", "cpu") == InferencePrecision("bf16", "channels_last")
    _cpu(monkeypatch, native=False)
    monkeypatch.setenv(ALLOW_EMULATED_ENV, "1")  # measurements (docs/features.md) may run it anyway
    assert resolve_precision("bf16", "cpu").precision == "bf16"


def test_a_set_refuses_another_precision_and_old_sets_count_as_fp32(tmp_path: Path):
    out = tmp_path / "set"
    out.mkdir()
    fp32, bf16 = InferencePrecision(), InferencePrecision("bf16", "channels_last")
    (out / "manifest.json").write_text(json.dumps({"kind": "features", "precision": bf16.to_dict()}))
    check_resume_precision(out, bf16)
    with pytest.raises(ConfigError, match=r"computed in bf16 \(channels_last\); fp32 \(channels_last\) would mix"):
        check_resume_precision(out, fp32)
    check_resume_precision(out, fp32, overwrite=True)
    # a manifest from before precisions were recorded: fp32 resumes under its old header, bf16 is refused
    (out / "manifest.json").write_text(json.dumps({"kind": "features"}))
    check_resume_precision(out, fp32)
    assert precision_header(out, fp32) == {}
    assert precision_header(out, fp32, overwrite=True) == {"precision": fp32.to_dict()}
    with pytest.raises(ConfigError, match="would mix precisions"):
        check_resume_precision(out, bf16)


def test_bf16_features_of_real_images_are_close_to_fp32(imagenet_samples_dir):
    """Tolerance: per-image cosine ≥ 0.999 (Flowers, all 8,189 images: docs/features.md "Precision").

    bf16 keeps 8 significand bits (relative rounding 2^-9 per operand) and accumulates in fp32; with the
    stem and first blocks in fp32 (backbones.EFFICIENTNET_FP32_BLOCKS) the pooled feature drifts by a few
    1e-4 relative. The bf16 run must also differ from fp32 at all (autocast really ran). Emulated bf16
    rounds like native bf16 (oneDNN: round-to-nearest inputs, fp32 accumulation), so this holds on any CPU.
    """
    from zsl_scale.features import get_backbone, list_images
    from zsl_scale.features.inputs import load_image

    spec = get_backbone("efficientnet_lite0")
    _, refs = list_images(imagenet_samples_dir)
    pixels = np.stack([load_image(r.to_row(), spec.preprocess)[0] for r in refs[::125]])  # 8 classes
    model = spec.load()
    feats = {}
    for p in ("fp32", "bf16"):
        chosen = InferencePrecision(p, "channels_last")
        with torch.inference_mode():
            x = chosen.prepare(spec.preprocess.normalize(torch.from_numpy(pixels)))
            out = chosen.prepare(model).features(x, chosen.low_precision("cpu"))
        feats[p] = out.float().numpy().astype(np.float64)
    a, b = feats["fp32"], feats["bf16"]
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    print(f"bf16 vs fp32 on {len(cos)} images: min cosine {cos.min():.6f}, max |Δ| {np.abs(a - b).max():.3g}")
    assert cos.min() >= 0.999
    assert np.abs(a - b).max() > 1e-3
