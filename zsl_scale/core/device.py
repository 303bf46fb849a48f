"""Run-time device choice: code never hard-codes CUDA."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from zsl_scale.core.errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """Map ``auto`` / ``cpu`` / ``cuda`` / ``cuda:N`` / ``mps`` to a usable :class:`torch.device`.

    ``auto`` picks the first accelerator torch can see, so the same command runs on a laptop and on a
    GPU node. Asking for an accelerator that is absent is a user error, not a silent CPU fallback.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but torch sees no CUDA device; use --device cpu")
    return dev


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` torch intra-op threads (None: unchanged), restoring the previous count on exit.

    For settings that belong to one piece of work (a method's ``MethodSpec.threads``, a training worker's
    ``scale.threads_per_worker``), so that they never leak into the process's later work.
    """
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
