"""The small-benchmark protocol: validation phase → epochs → trainval → test, for GZSL, ZSL and GFSL."""

from __future__ import annotations

from typing import TYPE_CHECKING

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
__all__ = [
    "evaluate_method",
    "evaluate_settings",
    "fit_selected",
    "make_phase",
    "plugin_provenance",
    "render_report",
    "run_benchmark",
    "run_method",
    "run_predictions",
    "save_trained",
    "train_phase",
    "validate",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # static analysers see the names; at run time they load on first use
    from zsl_scale.protocol.evaluate import evaluate_settings, save_trained, train_phase, validate
    from zsl_scale.protocol.external import run_predictions
    from zsl_scale.protocol.methods import (
        evaluate_method,
        fit_selected,
        plugin_provenance,
        run_method,
    )
    from zsl_scale.protocol.phases import make_phase
    from zsl_scale.protocol.runs import render_report, run_benchmark
