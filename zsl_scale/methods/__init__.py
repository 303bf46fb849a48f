"""The methods the evaluator compares (ConSE, DeViSE, SJE, ALE, ESZSL, f-CLSWGAN, CADA-VAE): a registry
of trainers that each turn seen-class features + class embeddings into what the one scorer consumes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zsl_scale.core import lazy_exports

_EXPORTS = {
    "FAST": "registry",
    "METHODS": "registry",
    "Fitted": "base",
    "MethodSpec": "registry",
    "TrainData": "base",
    "class_table": "base",
    "get_method": "registry",
    "method_names": "registry",
    "with_grid": "registry",
    "predict": "base",
    "queries": "base",
    "scores": "base",
}
__all__ = [
    "FAST",
    "METHODS",
    "Fitted",
    "MethodSpec",
    "TrainData",
    "class_table",
    "get_method",
    "method_names",
    "predict",
    "queries",
    "scores",
    "with_grid",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # static analysers see the names; at run time they load on first use
    from zsl_scale.methods.base import Fitted, TrainData, class_table, predict, queries, scores
    from zsl_scale.methods.registry import FAST, METHODS, MethodSpec, get_method, method_names, with_grid
