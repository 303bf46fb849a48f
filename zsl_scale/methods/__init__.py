"""The methods the evaluator compares (ConSE, DeViSE, SJE, ALE, ESZSL, f-CLSWGAN, CADA-VAE): a registry
of trainers that each turn seen-class features + class embeddings into what the one scorer consumes.

This is also the public method plugin API (docs/methods.md, "Add your method"): a plugin builds a
:class:`MethodSpec` whose ``make(data: TrainData, seed) → Trainer`` trains on one phase and whose
``Trainer.fit(hp: Hyper, on_epoch: OnEpoch | None) → Fitted`` returns the query map and class rows the
scorer ranks. :func:`get_method` finds built-ins, installed plugins (entry point group
``zsl_scale.methods``) and ``package.module:factory`` references.
"""

from __future__ import annotations

from zsl_scale.core import lazy_exports

_EXPORTS = {
    "FAST": "registry",
    "METHODS": "registry",
    "PLUGIN_GROUP": "plugins",
    "Fitted": "base",
    "Hyper": "base",
    "Kind": "base",
    "MethodSpec": "base",
    "OnEpoch": "base",
    "TrainData": "base",
    "Trainer": "base",
    "class_table": "base",
    "get_method": "registry",
    "method_names": "registry",
    "origin_label": "plugins",
    "with_grid": "registry",
    "hyper_value": "registry",
    "predict": "base",
    "queries": "base",
    "scores": "base",
}
__all__ = [*_EXPORTS]  # each public name is listed once, in _EXPORTS (name → module)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
