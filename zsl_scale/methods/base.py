"""What every method consumes and produces: training data in, a query map and a class table out.

A method trains on seen-class image features (plus, in GFSL, the few unseen shots) and the class
embeddings, and returns a :class:`Fitted`: ``embed`` maps image features to query vectors and ``weights``
gives the rows of a class table (weights and bias, or prototypes) for any set of classes it can score.
The one scorer then ranks ``embed(x) · Wᵀ + b`` — on a small benchmark (:func:`scores`) or as a
:class:`zsl_scale.scoring.ClassTable` on ImageNet splits (:func:`class_table`). Keeping every method to
this shape is what makes their numbers comparable: same features, same search space, same tie rule.

This module is the method plugin API (re-exported by :mod:`zsl_scale.methods`): a plugin is a
:class:`MethodSpec` whose ``make(data: TrainData, seed) → Trainer`` and ``Trainer.fit(hp, on_epoch) →
Fitted`` follow the types below; :mod:`zsl_scale.methods.plugins` finds and checks it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
from torch import Tensor

from zsl_scale.core import DataError
from zsl_scale.scoring import ClassTable

Hyper = dict[str, Any]


@dataclass
class TrainData:
    """A phase's training set on the device.

    Attributes:
        x: ``[n, d]`` scaled image features of the training images (seen classes, plus GFSL shots).
        y: ``[n]`` benchmark class indices of ``x``.
        emb: ``[C, E]`` class embeddings of **all** classes (rows indexed by class index).
        unseen: class indices without training images whose embeddings a generative method may use to
            synthesise features (the phase's unseen classes; never their images).
        state_dir: where a method whose training can outlast a session (f-CLSWGAN's GAN) keeps resumable
            state; None: it trains in one go and keeps nothing.
        log: where such a method reports progress (a CPU GAN runs for hours; silence between checkpoints
            looks like a hang); None: silent.
    """

    x: Tensor
    y: Tensor
    emb: Tensor
    unseen: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    state_dir: Path | None = None
    log: Callable[[str], None] | None = None

    @property
    def seen(self) -> np.ndarray:
        """Sorted class indices with training images."""
        return np.unique(self.y.cpu().numpy())

    @property
    def device(self) -> torch.device:
        return self.x.device


@dataclass
class Fitted:
    """A trained method as the scorer consumes it: ``logits = embed(x) · weightᵀ + bias``.

    ``weights(classes)`` returns ``(weight [len(classes), D], bias [len(classes)] or None)`` for class
    indices; rows follow ``classes`` (the tie-break order). A method that can only score the classes it
    was trained for (a softmax) raises :class:`DataError` for others.
    """

    embed: Callable[[Tensor], Tensor]
    weights: Callable[[np.ndarray], tuple[Tensor, Tensor | None]]
    info: dict[str, Any] = field(default_factory=dict)


OnEpoch = Callable[[int, Fitted], None]


class Trainer(Protocol):
    """Trains one method on one phase's data; may cache work shared by grid points (eigendecompositions).

    ``make(data, seed)`` builds it once per phase (each validation fold, then trainval); ``fit(hp)`` is
    called once per grid point ``hp`` (one value per grid key) and returns the trained :class:`Fitted`.
    A method trained in epochs calls ``on_epoch(epoch, fitted)`` after each one, so the protocol can score
    every epoch on validation and keep the best (``hp["epochs"]`` is then the maximum); a closed-form
    method ignores it.
    """

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
        origin: where a plugin came from (distribution and version, or module file and sha256), recorded in
            every results file's provenance; empty for the built-in methods.
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
    origin: dict[str, str] = field(default_factory=dict)

    def points(self) -> list[Hyper]:
        """Every grid point, in a fixed order (ties on validation go to the first)."""
        keys = list(self.grid)
        return [dict(zip(keys, vals, strict=True)) for vals in itertools.product(*(self.grid[k] for k in keys))]


@torch.no_grad()
def scores(fitted: Fitted, x: Tensor, classes: np.ndarray, batch_size: int = 8192) -> Tensor:
    """Logits ``[n, len(classes)]`` of ``x`` over ``classes`` (in that column order)."""
    w, b = fitted.weights(np.asarray(classes))
    out = []
    for i in range(0, x.shape[0], batch_size):
        logits = fitted.embed(x[i : i + batch_size]) @ w.T
        out.append(logits if b is None else logits + b)
    return torch.cat(out) if out else x.new_zeros((0, len(classes)))


@torch.no_grad()
def predict(fitted: Fitted, x: Tensor, classes: np.ndarray) -> np.ndarray:
    """Predicted class index of each row of ``x`` among ``classes`` (ties → the first listed, argmax rule)."""
    classes = np.asarray(classes)
    return classes[scores(fitted, x, classes).argmax(dim=1).cpu().numpy()]


def class_table(fitted: Fitted, classes: np.ndarray, class_ids: Sequence[str]) -> ClassTable:
    """The class table of ``classes`` (named ``class_ids``) for the one chunked scorer (ImageNet splits)."""
    if len(class_ids) != len(classes):
        raise DataError(f"{len(classes)} classes but {len(class_ids)} class ids")
    w, b = fitted.weights(np.asarray(classes))
    bias = None if b is None else b.detach().cpu().numpy()
    return ClassTable(tuple(class_ids), w.detach().cpu().numpy(), bias)


@torch.no_grad()
def queries(fitted: Fitted, x: Tensor, batch_size: int = 8192) -> np.ndarray:
    """``embed(x)`` as float32 numpy: the query vectors the chunked scorer ranks against :func:`class_table`."""
    out = [fitted.embed(x[i : i + batch_size]).float().cpu().numpy() for i in range(0, x.shape[0], batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def normalize_rows(t: Tensor) -> Tensor:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    return t / t.norm(dim=1, keepdim=True).clamp_min(1e-12)


def one_of(classes: np.ndarray, known: np.ndarray, method: str) -> np.ndarray:
    """Positions of ``classes`` in ``known``; a class the method was not trained for is a DataError."""
    pos = {int(c): i for i, c in enumerate(known)}
    missing = [int(c) for c in classes if int(c) not in pos]
    if missing:
        raise DataError(f"{method} was trained for a fixed label space and cannot score class {missing[0]}")
    return np.array([pos[int(c)] for c in classes], dtype=np.int64)


def generator(seed: int) -> torch.Generator:
    """A CPU generator: the same draws on CPU and CUDA runs (draw on CPU, then move)."""
    return torch.Generator().manual_seed(seed)
