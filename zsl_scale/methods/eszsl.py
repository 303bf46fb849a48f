"""ESZSL (Romera-Paredes & Torr, ICML 2015): a bilinear compatibility in closed form.

``V = (X Xᵀ + γI)⁻¹ X Y Sᵀ (S Sᵀ + λI)⁻¹`` with ``X`` the features (d × m), ``Y ∈ {−1, 1}^{m × z}`` the
one-vs-rest labels of the ``z`` training classes and ``S`` their embeddings (a × z); an image scores
``xᵀ V s`` against any class embedding ``s``. The paper's third regulariser (β = γλ) is the one this
form assumes. γ and λ range over 10^{−3…3} and are chosen on validation. Why eigendecompositions: both
inverses are ``U diag(1/(e + γ)) Uᵀ`` of one symmetric matrix, so the whole 7 × 7 grid costs two ``eigh``
calls plus cheap products instead of 49 solves of a 1280 × 1280 system; and ``V`` is kept as two
low-rank factors (see :class:`EszslTrainer`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from zsl_scale.methods.base import Fitted, Hyper, OnEpoch, TrainData

GRID = {"gamma": [10.0**k for k in range(-3, 4)], "lam": [10.0**k for k in range(-3, 4)]}


def eszsl_direct(x: Tensor, y_pm: Tensor, s: Tensor, gamma: float, lam: float) -> Tensor:
    """The closed form by two direct solves (float64): the reference for tests and tiny problems.

    Args:
        x: ``[m, d]`` features (rows are images, i.e. ``Xᵀ``).
        y_pm: ``[m, z]`` labels in {−1, 1}.
        s: ``[z, a]`` class embeddings (rows are classes, i.e. ``Sᵀ``).
    """
    x, y_pm, s = x.double(), y_pm.double(), s.double()
    left = torch.linalg.solve(x.T @ x + gamma * torch.eye(x.shape[1], dtype=x.dtype), x.T @ y_pm @ s)
    return torch.linalg.solve(s.T @ s + lam * torch.eye(s.shape[1], dtype=s.dtype), left.T).T


class EszslTrainer:
    """Caches the two eigendecompositions of a phase's data; each ``fit`` is a few matrix products."""

    def __init__(self, data: TrainData, seed: int) -> None:
        classes = torch.as_tensor(data.seen, device=data.device)
        x = data.x.double()
        y_pm = (data.y[:, None] == classes[None, :]).double() * 2 - 1  # [m, z]
        s = data.emb[classes].double()  # [z, a]
        self.ex, self.ux = torch.linalg.eigh(x.T @ x)
        # (SᵀS + λI)⁻¹ on the a-side equals S-side algebra on the z × z kernel: S (SᵀS + λI)⁻¹ = (SSᵀ + λI)⁻¹ S,
        # so only a z × z eigendecomposition is needed for it (z training classes ≪ a embedding dims).
        self.es, self.us = torch.linalg.eigh(s @ s.T)
        # V = Ux D_γ (Uxᵀ Xᵀ Y) · Us D_λ (Usᵀ S): the middle has rank ≤ z, so V stays a product of a d × z
        # and a z × a factor — scoring costs n·z·(d + a), not n·d·a.
        self.left = self.ux.T @ (x.T @ y_pm)  # [d, z]
        self.s = s  # [z, a]
        self.emb = data.emb

    def factors(self, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
        """``(Vl [d, z], Vr [z, a])`` with ``V = Vl · Vr`` for one (γ, λ), float64."""
        vl = self.ux @ (self.left / (self.ex[:, None] + gamma))
        vr = (self.us / (self.es[None, :] + lam)) @ (self.us.T @ self.s)
        return vl, vr

    def solve(self, gamma: float, lam: float) -> Tensor:
        """``V`` ``[d, a]`` for one (γ, λ), float64."""
        vl, vr = self.factors(gamma, lam)
        return vl @ vr

    def fit(self, hp: Hyper, on_epoch: OnEpoch | None = None) -> Fitted:
        vl, vr = (f.float() for f in self.factors(float(hp["gamma"]), float(hp["lam"])))
        emb = self.emb
        return Fitted(embed=lambda q: (q @ vl) @ vr,
                      weights=lambda c: (emb[torch.as_tensor(c, device=emb.device)], None))
