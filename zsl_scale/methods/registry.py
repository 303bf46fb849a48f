"""The method registry: every method the evaluator compares, by name, with its validation grid.

A :class:`MethodSpec` says how to build a trainer for a phase's data and which hyper-parameters to try
on validation. ``epochs`` in a grid is the *largest* epoch count: one run per grid point is scored after
every epoch and the best epoch is kept (early stopping on validation, as for CADA-VAE's classifier).
CADA-VAE is an entry too; its trainer is the VAE + latent-classifier protocol of
:mod:`zsl_scale.protocol.evaluate` (``protocol="cada"``), which already selects its epochs on validation.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from zsl_scale.core import ConfigError
from zsl_scale.methods import compat, conse, eszsl, fclswgan
from zsl_scale.methods.base import Fitted, Hyper, OnEpoch, TrainData


class Trainer(Protocol):
    """Trains one method on one phase's data; may cache work shared by grid points (eigendecompositions)."""

    def fit(self, hp: Hyper, on_epoch: OnEpoch | None = None) -> Fitted: ...


Kind = Literal["closed-form", "compatibility", "generative"]


@dataclass(frozen=True)
class MethodSpec:
    """One registered method.

    Attributes:
        name: the ``--method`` name.
        display: the name in results files and on the leaderboard.
        kind: closed-form, compatibility or generative (the demo runs the fast kinds).
        reference: the paper that defines it.
        make: ``make(data, seed)`` → a trainer for one phase (None: runs through ``protocol``).
        grid: hyper-parameter values searched on validation (``epochs``: the maximum, see module doc).
        protocol: ``"generic"`` (:mod:`zsl_scale.protocol.methods`) or ``"cada"`` (the CADA-VAE protocol).
        threads: torch intra-op threads while training (None: leave as is). The SGD methods run thousands of
            tiny matrix products; on a busy 2-core machine two threads made DeViSE 20× more CPU-hungry
            and 16× slower than one (the threads wait on each other at every op), so they use one.
        optional: hyper-parameters the trainer reads with a default (not searched unless a grid names them).
    """

    name: str
    display: str
    kind: Kind
    reference: str
    make: Callable[[TrainData, int], Trainer] | None
    grid: dict[str, list[Any]] = field(default_factory=dict)
    protocol: Literal["generic", "cada"] = "generic"
    threads: int | None = None
    optional: tuple[str, ...] = ()

    def points(self) -> list[Hyper]:
        """Every grid point, in a fixed order (ties on validation go to the first)."""
        keys = list(self.grid)
        return [dict(zip(keys, vals, strict=True)) for vals in itertools.product(*(self.grid[k] for k in keys))]


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
    """The registered method ``name`` (case-insensitive, aliases allowed); a ConfigError with a suggestion else."""
    key = ALIASES.get(name.lower(), name.lower())
    if key in METHODS:
        return METHODS[key]
    close = difflib.get_close_matches(key, [*METHODS, *ALIASES], n=1)
    hint = f"; did you mean {ALIASES.get(close[0], close[0])!r}?" if close else ""
    raise ConfigError(f"unknown method {name!r}{hint} (known: {', '.join(METHODS)})")


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
        grid[key] = values
    return replace(spec, grid=grid)


def method_names() -> list[str]:
    return list(METHODS)
