"""Small GZSL benchmarks as data: the bundle format, the xlsa17 / Flowers-102 loaders, synthetic benchmarks."""

from __future__ import annotations

from zsl_scale.core import lazy_exports

_EXPORTS = {
    "Benchmark": "bundle",
    "resolve_benchmark": "bundle",
}
__all__ = [*_EXPORTS]  # each public name is listed once, in _EXPORTS (name → module)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
