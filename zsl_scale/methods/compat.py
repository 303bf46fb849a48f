"""Bilinear compatibility methods trained by SGD: DeViSE, SJE and ALE differ only in their ranking loss.

All three score ``F(x, y) = xᵀ W s_y`` (DeViSE writes it ``s_yᵀ M x``) with unit-norm class embeddings
and stop early: the number of epochs and the learning rate are chosen on validation.

Why ``W = A · S_tr``: the gradient of these losses w.r.t. W is ``xᵀ g S_tr`` (g: the loss's gradient
w.r.t. the training classes' scores, S_tr: their embeddings), so from a zero start plain SGD keeps W in
that span and the step ``W -= η xᵀ g S_tr`` is exactly ``A -= η xᵀ g`` on ``A`` (d × z, z training
classes). Note that this is *not* autograd's step on A (that would be ``η xᵀ g K``, K = S_tr S_trᵀ — a
different, preconditioned descent); the step is written by hand. It trains d × z numbers instead of
d × E: on Flowers' 1024-d embeddings and ~60–80 training classes each step costs over ten times less.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from zsl_scale.methods.base import Fitted, Hyper, OnEpoch, TrainData, generator, normalize_rows

Loss = Callable[[Tensor, Tensor], Tensor]
GRID = {"lr": [0.01, 0.1], "epochs": [25]}
BATCH = 64


def devise_loss(scores: Tensor, y: Tensor, margin: float = 0.1) -> Tensor:
    """DeViSE's hinge rank loss, batch mean of ``Σ_{j≠y} max(0, margin − s_y + s_j)``."""
    true = scores.gather(1, y[:, None])
    hinge = (margin - true + scores).clamp_min(0)
    hinge = hinge.scatter(1, y[:, None], 0.0)
    return hinge.sum(dim=1).mean()


def sje_loss(scores: Tensor, y: Tensor) -> Tensor:
    """SJE's structured SVM loss, batch mean of ``max_j [Δ(y, j) + s_j] − s_y`` with Δ = 0/1."""
    delta = torch.ones_like(scores).scatter(1, y[:, None], 0.0)
    return ((scores + delta).max(dim=1).values - scores.gather(1, y[:, None]).squeeze(1)).mean()


def ale_loss(scores: Tensor, y: Tensor) -> Tensor:
    """ALE's weighted approximate-rank loss: ``(ℓ_r / r) Σ_{j≠y} max(0, 1 + s_j − s_y)``, batch mean.

    ``r`` is the number of violating classes and ``ℓ_r = Σ_{i≤r} 1/i``; the weight is a count, not a
    function to differentiate (it is detached), as in the paper's SGD.
    """
    viol = (1.0 - scores.gather(1, y[:, None]) + scores).clamp_min(0).scatter(1, y[:, None], 0.0)
    r = (viol > 0).sum(dim=1)
    harmonic = torch.cumsum(1.0 / torch.arange(1, scores.shape[1] + 1, device=scores.device), 0)
    weight = torch.where(r > 0, harmonic[(r - 1).clamp_min(0)] / r.clamp_min(1), torch.zeros_like(harmonic[:1]))
    return (weight.detach() * viol.sum(dim=1)).mean()


LOSSES: dict[str, Loss] = {"devise": devise_loss, "sje": sje_loss, "ale": ale_loss}


class CompatTrainer:
    """SGD on one of :data:`LOSSES` over a phase's training classes, scored after every epoch."""

    def __init__(self, data: TrainData, seed: int, loss: str) -> None:
        self.data, self.seed, self.loss = data, seed, LOSSES[loss]
        self.classes = data.seen
        self.s_tr = normalize_rows(data.emb[torch.as_tensor(self.classes, device=data.device)])  # [z, E]
        self.kernel = self.s_tr @ self.s_tr.T  # [z, z]
        lookup = torch.full((data.emb.shape[0],), -1, dtype=torch.long, device=data.device)
        lookup[torch.as_tensor(self.classes, device=data.device)] = torch.arange(len(self.classes), device=data.device)
        self.y_local = lookup[data.y]
        self.emb_unit = normalize_rows(data.emb)

    def _fitted(self, a: Tensor, epoch: int) -> Fitted:
        a, s_tr, emb = a.detach().clone(), self.s_tr, self.emb_unit  # W = a · s_tr, kept factored (cheaper)
        return Fitted(embed=lambda q: (q @ a) @ s_tr,
                      weights=lambda c: (emb[torch.as_tensor(c, device=emb.device)], None), info={"epochs": epoch})

    def fit(self, hp: Hyper, on_epoch: OnEpoch | None = None) -> Fitted:
        x, y = self.data.x, self.y_local
        a = torch.zeros((x.shape[1], len(self.classes)), device=x.device)
        lr, epochs, gen = float(hp["lr"]), int(hp["epochs"]), generator(self.seed)
        for epoch in range(1, epochs + 1):
            perm = torch.randperm(x.shape[0], generator=gen).to(x.device)
            for i in range(0, x.shape[0], BATCH):
                xb = x[perm[i : i + BATCH]]
                logits = (xb @ a @ self.kernel).requires_grad_(True)
                (g,) = torch.autograd.grad(self.loss(logits, y[perm[i : i + BATCH]]), logits)
                a -= lr * (xb.T @ g)  # = the full-W SGD step  W -= lr · xᵀ g S_tr, written in A
            if on_epoch is not None:
                on_epoch(epoch, self._fitted(a, epoch))
        return self._fitted(a, epochs)


def trainer(loss: str) -> Callable[[TrainData, int], CompatTrainer]:
    """A trainer factory for the registry."""
    return lambda data, seed: CompatTrainer(data, seed, loss)


