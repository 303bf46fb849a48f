"""The method registry: every method the evaluator compares, by name, with its validation grid.

A :class:`MethodSpec` says how to build a trainer for a phase's data and which hyper-parameters to try
on validation. ``epochs`` in a grid is the *largest* epoch count: one run per grid point is scored after
every epoch and the best epoch is kept (early stopping on validation, as for CADA-VAE's classifier).
CADA-VAE is an entry too; its trainer is the VAE + latent-classifier protocol of
:mod:`zsl_scale.protocol.evaluate` (``protocol="cada"``), which already selects its epochs on validation.
"""

from __future__ import annotations

import difflib
from dataclasses import replace
from typing import Any

from zsl_scale.core import ConfigError
from zsl_scale.methods import compat, conse, eszsl, fclswgan, plugins
from zsl_scale.methods.base import MethodSpec

METHODS: dict[str, MethodSpec] = {m.name: m for m in (
    MethodSpec("cada", "CADA-VAE", "generative", "Schönfeld et al., CVPR 2019", None, protocol="cada"),
    MethodSpec("eszsl", "ESZSL", "closed-form", "Romera-Paredes & Torr, ICML 2015", eszsl.EszslTrainer, eszsl.GRID,
               threads=1),
    MethodSpec("devise", "DeViSE", "compatibility", "Frome et al., NeurIPS 2013", compat.trainer("devise"),
               compat.GRID, threads=1),
    MethodSpec("sje", "SJE", "compatibility", "Akata et al., CVPR 2015", compat.trainer("sje"), compat.GRID,
               threads=1),
    MethodSpec("ale", "ALE", "compatibility", "Akata et al., TPAMI 2016", compat.trainer("ale"), compat.GRID,
               threads=1),
    MethodSpec("conse", "ConSE", "compatibility", "Norouzi et al., ICLR 2014", conse.ConseTrainer, conse.GRID,
               threads=1),
    MethodSpec("fclswgan", "f-CLSWGAN", "generative", "Xian et al., CVPR 2018", fclswgan.FclswganTrainer,
               fclswgan.GRID, threads=1, optional=("cls_lr", "gan_lr")),
)}
ALIASES = {"cada-vae": "cada", "f-clswgan": "fclswgan", "ezsl": "eszsl"}
FAST = ("eszsl", "devise", "sje", "ale", "conse")


def get_method(name: str) -> MethodSpec:
    """The method ``name``: a built-in (case-insensitive, aliases allowed), an installed plugin (entry point
    group ``zsl_scale.methods``) or ``package.module:factory``; a ConfigError with a suggestion else.

    Only the plugin asked for is imported, so a broken plugin is one error when used and invisible otherwise.
    """
    key = ALIASES.get(name.lower(), name.lower())
    if key in METHODS:
        return METHODS[key]
    if ":" in name:
        return _not_builtin(plugins.load_reference(name.strip()), f"plugin {name!r}")
    installed = plugins.entry_points()
    if key in installed:
        return _not_builtin(plugins.load_entry_point(installed[key]), f"plugin {installed[key].name!r}")
    known = [*METHODS, *sorted(set(installed) - set(METHODS))]
    close = difflib.get_close_matches(key, [*known, *ALIASES], n=1)
    hint = f"; did you mean {ALIASES.get(close[0], close[0])!r}?" if close else ""
    raise ConfigError(f"unknown method {name!r}{hint} (known: {', '.join(known)}; or package.module:factory)")


def _not_builtin(spec: MethodSpec, where: str) -> MethodSpec:
    if spec.name.lower() in METHODS or spec.name.lower() in ALIASES:
        raise ConfigError(f"{where}: the name {spec.name!r} is a built-in method's; choose another")
    return spec


def with_grid(spec: MethodSpec, overrides: dict[str, Any]) -> MethodSpec:
    """``spec`` searching ``overrides`` in place of its registry grid values (a scalar is a one-value list).

    How a user runs a schedule the registry does not default to, e.g. f-CLSWGAN's authors' schedule on a
    GPU: ``--grid '{hidden: 4096, gan_steps: 7000, n_unseen: 1200}'``. Keys outside the method's grid and
    optional hyper-parameters are refused, so a typo cannot silently leave the default in place.
    """
    known = [*spec.grid, *spec.optional]
    bad = [k for k in overrides if k not in known]
    if bad:
        close = difflib.get_close_matches(bad[0], known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{spec.name} has no hyper-parameter {bad[0]!r}{hint} (known: {', '.join(known)})")
    grid = dict(spec.grid)
    for key, value in overrides.items():
        values = list(value) if isinstance(value, list | tuple) else [value]
        if not values:
            raise ConfigError(f"{spec.name}: {key!r} needs at least one value")
        grid[key] = [hyper_value(spec.name, key, v) for v in values]
    return replace(spec, grid=grid)


# What each hyper-parameter may be: (type, smallest allowed value). Rates, regularisers and sizes are
# positive; a value outside would train nonsense silently (ESZSL's γ = -1 inverts a singular matrix).
HYPER_RULES: dict[str, tuple[type, float]] = {
    "gamma": (float, 0.0), "lam": (float, 0.0), "lr": (float, 0.0), "cls_lr": (float, 0.0), "gan_lr": (float, 0.0),
    "epochs": (int, 1), "T": (int, 1), "gan_steps": (int, 1), "n_unseen": (int, 1), "hidden": (int, 1),
}


def hyper_value(method: str, key: str, value: Any) -> float | int:
    """``value`` of hyper-parameter ``key`` as its type, or a one-line :class:`ConfigError`.

    Floats must be > 0 and counts ≥ 1. YAML reads ``1e-3`` (no dot) as a string, so numeric strings are
    accepted; booleans, other strings and nested values are refused before any work starts.
    """
    kind, low = HYPER_RULES.get(key, (float, float("-inf")))
    try:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError
        number = float(value)
        if kind is int:
            if number != int(number):
                raise ValueError
            number = int(number)
    except (ValueError, OverflowError):
        raise ConfigError(f"{method}: {key} must be {'an integer' if kind is int else 'a number'}, "
                          f"got {value!r}") from None
    if not number == number or number in (float("inf"), float("-inf")) or not (
            number >= low if kind is int else number > low):
        raise ConfigError(f"{method}: {key} must be {'≥' if kind is int else '>'} {low:g}, got {value!r}")
    return number


def method_names() -> list[str]:
    """Built-in method names, then installed plugins' (entry-point names; none is imported)."""
    return [*METHODS, *sorted(set(plugins.entry_points()) - set(METHODS))]
