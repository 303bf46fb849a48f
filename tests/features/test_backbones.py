"""Backbone registry: lookup, errors, preprocessing geometry, and the real EfficientNet-Lite0 weights."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zsl_scale.core.errors import ConfigError, DataError, ZslError
from zsl_scale.features.backbones import Preprocess, available, get_backbone, preprocess_image


def test_registry_lists_both_backbones_with_dims():
    assert {"efficientnet_lite0", "resnet101"} <= set(available())
    assert get_backbone("efficientnet_lite0").dim == 1280
    assert get_backbone("resnet101").dim == 2048


def test_unknown_backbone_suggests_the_closest_name():
    with pytest.raises(ConfigError, match="did you mean 'efficientnet_lite0'"):
        get_backbone("efficientnet-lite0")


def test_resnet101_without_torchvision_or_weights_is_a_clear_user_error(tmp_path: Path):
    spec = get_backbone("resnet101")
    with pytest.raises(ZslError):  # torchvision missing (here) or no --weights
        spec.check(None)
    no_requires = dataclasses.replace(spec, requires=())
    with pytest.raises(ConfigError, match="needs a local weights file"):
        no_requires.check(None)
    with pytest.raises(DataError, match="not found"):
        no_requires.check(tmp_path / "missing.pth")


def test_missing_weights_file_is_a_data_error(tmp_path: Path):
    with pytest.raises(DataError, match="weights file for backbone 'efficientnet_lite0' not found"):
        get_backbone("efficientnet_lite0").check(tmp_path / "nope.pth")


@pytest.mark.parametrize("size", [(300, 400), (500, 256), (640, 480), (224, 224)])
def test_preprocess_resizes_short_side_and_centre_crops(size):
    spec = Preprocess()
    img = Image.new("RGB", size)
    w, h = size
    # paint a marker at the centre: it must stay at the centre of the crop
    img.putpixel((w // 2, h // 2), (255, 0, 0))
    out = preprocess_image(img, spec)
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    red = out[..., 0].astype(int)
    cy, cx = np.unravel_index(red.argmax(), red.shape)
    assert abs(cy - 112) <= 2 and abs(cx - 112) <= 2


def test_preprocess_handles_greyscale_and_cmyk():
    spec = Preprocess()
    for mode in ("L", "CMYK", "RGBA", "P"):
        assert preprocess_image(Image.new(mode, (300, 260)), spec).shape == (224, 224, 3)


def test_normalize_maps_uint8_to_minus_one_one():
    spec = get_backbone("efficientnet_lite0").preprocess
    x = torch.tensor([[[[0, 255, 128]]]], dtype=torch.uint8)  # NHWC 1x1x1x3
    out = spec.normalize(x)
    assert out.shape == (1, 3, 1, 1)
    assert out.flatten().tolist() == pytest.approx([-1.0, 1.0, 128 / 127.5 - 1.0], abs=1e-6)


def test_efficientnet_lite0_real_weights_classify_real_images(imagenet_samples_dir: Path):
    spec = get_backbone("efficientnet_lite0")
    model = spec.load()
    wnids = sorted(p.name for p in imagenet_samples_dir.iterdir() if p.is_dir())
    picks = wnids[::100]
    x = np.stack([preprocess_image(Image.open(next((imagenet_samples_dir / w).iterdir())), spec.preprocess)
                  for w in picks])
    with torch.inference_mode():
        feats = model.features(spec.preprocess.normalize(torch.from_numpy(x)))
        logits = model.head(feats)
    assert feats.shape == (len(picks), 1280)
    hits = sum(wnids[i] == w for i, w in zip(logits.argmax(1).tolist(), picks, strict=True))
    assert hits >= len(picks) - 2
    assert spec.weights_id().startswith("efficientnet-lite0-57934424.pth@sha256:57934424")
