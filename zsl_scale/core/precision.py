"""Inference precision of the extraction and latent stages: ``--precision fp32|bf16|fp16|auto``.

Why it exists: feature extraction is the dominant cost of a full evaluation (docs/scale.md), and a
backbone's forward pass under bf16 autocast is several times faster on CPUs with bf16 units
(AVX512_BF16, AMX) and on GPU tensor cores. Where the CPU has no bf16 units the arithmetic is
*emulated* by oneDNN: the features come out the same (bf16 rounding is bf16 rounding) but the reason for
asking — speed — is gone, so such a request is refused with one line rather than quietly run
(``ZSL_SCALE_ALLOW_EMULATED_BF16=1`` lets measurements such as docs/features.md's accuracy study run it
anyway). fp16 is offered on CUDA only: CPU fp16 convolutions are emulated everywhere this project runs.

The resolved precision and memory format are part of a feature set's identity (its manifest header):
features of two precisions are never mixed in one set (:func:`check_resume_precision`).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from zsl_scale.core.errors import ConfigError

Precision = Literal["fp32", "bf16", "fp16", "auto"]
MemoryFormat = Literal["auto", "contiguous", "channels_last"]
PRECISIONS = ("fp32", "bf16", "fp16", "auto")
MEMORY_FORMATS = ("auto", "contiguous", "channels_last")
ALLOW_EMULATED_ENV = "ZSL_SCALE_ALLOW_EMULATED_BF16"
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class InferencePrecision:
    """A resolved choice: ``precision`` is fp32, bf16 or fp16 (never auto); ``memory_format`` is explicit."""

    precision: str = "fp32"
    memory_format: str = "channels_last"

    def to_dict(self) -> dict[str, str]:
        """Manifest form."""
        return asdict(self)

    @contextlib.contextmanager
    def autocast(self, device_type: str) -> Iterator[None]:
        """Autocast for bf16/fp16 (weights stay fp32; convolutions and matmuls run in the low precision)."""
        if self.precision == "fp32":
            yield
            return
        with torch.autocast(device_type, dtype=_DTYPES[self.precision]):
            yield

    def low_precision(self, device_type: str) -> Callable[[], contextlib.AbstractContextManager[None]] | None:
        """A factory of this precision's autocast context (``None`` for fp32): for models that enter it
        only around the layers that tolerate it (features.Backbone.features)."""
        if self.precision == "fp32":
            return None
        return lambda: self.autocast(device_type)

    def prepare(self, t: torch.Tensor | torch.nn.Module) -> Any:
        """Put a model or an NCHW batch in this memory format (no copy when it already is)."""
        fmt = torch.channels_last if self.memory_format == "channels_last" else torch.contiguous_format
        if isinstance(t, torch.Tensor):
            return t.contiguous(memory_format=fmt)
        return t.to(memory_format=fmt)


def cpu_has_native_bf16() -> bool:
    """True where this CPU computes bf16 in hardware: AVX512_BF16 or AMX (torch's query, else /proc/cpuinfo)."""
    cpu = getattr(torch, "cpu", None)
    queries = [getattr(cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if all(callable(q) for q in queries):
        return any(bool(q()) for q in queries)  # type: ignore[misc]
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def emulation_allowed() -> bool:
    """``ZSL_SCALE_ALLOW_EMULATED_BF16=1``: run bf16 on a CPU without bf16 units (for accuracy measurements)."""
    return os.environ.get(ALLOW_EMULATED_ENV, "") == "1"


def target_device(device: str, address: str | None = None) -> str:
    """Where a Ray stage's models will run (cpu or cuda), known before anything is written, since the
    precision depends on it: a local runtime has the GPUs torch sees here; a remote cluster is asked."""
    from zsl_scale.core.raysession import cluster_address, init_ray

    if device != "auto":
        return torch.device(device).type
    if cluster_address(address) is None:  # the option, else $RAY_ADDRESS
        return "cuda" if torch.cuda.is_available() else "cpu"
    import ray

    init_ray(address)
    return "cuda" if ray.cluster_resources().get("GPU", 0) > 0 else "cpu"


def resolve_precision(
    precision: str, device_type: str, memory_format: str = "auto", allow_emulated: bool | None = None
) -> InferencePrecision:
    """Resolve ``auto`` and check that ``precision`` is worth running on ``device_type`` (cpu or cuda).

    ``auto``: bf16 on a CPU with bf16 units, else fp32; bf16 on a GPU that supports it, else fp16.
    Memory format ``auto``: channels_last. The pipeline always fed the network channels_last batches
    (uint8 NHWC pixels permuted to NCHW keep NHWC strides, and torch then runs the convolutions
    channels_last), so fp32 features stay bitwise what they were; forcing ``contiguous`` measured
    1.5-2x slower on CPU (docs/features.md, "Precision").
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if memory_format not in MEMORY_FORMATS:
        raise ConfigError(f"memory format must be one of {', '.join(MEMORY_FORMATS)}, got {memory_format!r}")
    allow = emulation_allowed() if allow_emulated is None else allow_emulated
    if device_type == "cuda":
        bf16_ok = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
        if precision == "auto":
            precision = "bf16" if bf16_ok else "fp16"
        elif precision == "bf16" and not bf16_ok:
            raise ConfigError("--precision bf16: this GPU has no bf16 support; use fp16, fp32 or auto")
    elif device_type == "cpu":
        native = cpu_has_native_bf16()
        if precision == "auto":
            precision = "bf16" if native else "fp32"
        elif precision == "fp16":
            raise ConfigError("--precision fp16 is for CUDA; on a CPU use bf16 (with AVX512_BF16 or AMX) or fp32")
        elif precision == "bf16" and not native and not allow:
            raise ConfigError(
                "--precision bf16: this CPU has no bf16 units (AVX512_BF16 or AMX), so bf16 would be emulated; "
                f"use fp32 or auto (or set {ALLOW_EMULATED_ENV}=1 to measure it anyway)"
            )
    else:
        raise ConfigError(f"--precision supports cpu and cuda devices, got {device_type!r}")
    if memory_format == "auto":
        memory_format = "channels_last"
    return InferencePrecision(precision, memory_format)


def _old_manifest(out_dir: str | Path, overwrite: bool) -> dict[str, Any] | None:
    path = Path(out_dir) / "manifest.json"
    if overwrite or not path.is_file():
        return None
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # the shard store's own check reports an unreadable manifest
    return old if isinstance(old, dict) else None


def check_resume_precision(out_dir: str | Path, chosen: InferencePrecision, overwrite: bool = False,
                           before: InferencePrecision | None = None) -> None:
    """Refuse (one line) to add ``chosen``-precision shards to a set already holding another precision.

    A manifest written before precisions were recorded holds ``before`` (default: fp32, channels_last —
    what feature extraction always ran, see :func:`resolve_precision`).
    """
    old = _old_manifest(out_dir, overwrite)
    if old is None:
        return
    have = old.get("precision", (before or InferencePrecision()).to_dict())
    if not isinstance(have, dict) or have == chosen.to_dict():
        return
    raise ConfigError(
        f"{out_dir} holds {old.get('kind', 'shards')} computed in {have.get('precision')} "
        f"({have.get('memory_format')}); {chosen.precision} ({chosen.memory_format}) would mix precisions in "
        "one set: use another --out, the set's precision, or --overwrite"
    )


def precision_header(out_dir: str | Path, chosen: InferencePrecision, overwrite: bool = False,
                     before: InferencePrecision | None = None) -> dict[str, Any]:
    """The ``precision`` entry of a shard set's header, or nothing for a set written before precisions
    were recorded and resumed in the precision it was made with (so that it resumes instead of being refused
    as "different settings")."""
    old = _old_manifest(out_dir, overwrite)
    if old is not None and "precision" not in old and chosen == (before or InferencePrecision()):
        return {}
    return {"precision": chosen.to_dict()}
