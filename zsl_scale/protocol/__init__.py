"""The small-benchmark protocol: validation phase → epochs → trainval → test, for GZSL, ZSL and GFSL."""

from __future__ import annotations

from zsl_scale.core import lazy_exports

_EXPORTS = {
    "evaluate_method": "methods",
    "evaluate_settings": "evaluate",
    "fit_selected": "methods",
    "make_phase": "phases",
    "plugin_provenance": "methods",
    "render_report": "runs",
    "run_method": "methods",
    "run_benchmark": "runs",
    "run_predictions": "external",
    "save_trained": "evaluate",
    "train_phase": "evaluate",
    "validate": "evaluate",
}
__all__ = [*_EXPORTS]  # each public name is listed once, in _EXPORTS (name → module)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
