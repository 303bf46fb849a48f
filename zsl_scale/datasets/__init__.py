"""Small GZSL benchmarks as data: the bundle format, the xlsa17 / Flowers-102 loaders, synthetic benchmarks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zsl_scale.core import lazy_exports

_EXPORTS = {
    "Benchmark": "bundle",
    "resolve_benchmark": "bundle",
}
__all__ = [
    "Benchmark",
    "resolve_benchmark",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # static analysers see the names; at run time they load on first use
    from zsl_scale.datasets.bundle import Benchmark, resolve_benchmark
