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
from dataclasses import dataclass, field
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
    """

    name: str
    display: str
    kind: Kind
    reference: str
    make: Callable[[TrainData, int], Trainer] | None
    grid: dict[str, list[Any]] = field(default_factory=dict)
    protocol: Literal["generic", "cada"] = "generic"
    threads: int | None = None

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
               fclswgan.GRID, threads=1),
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


def method_names() -> list[str]:
    return list(METHODS)
