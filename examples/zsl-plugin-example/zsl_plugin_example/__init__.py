"""An example zsl-scale method plugin: LinProto, a linear projection to nearest prototypes.

A ridge map ``W`` takes each seen class's embedding to that class's mean image feature; an image then
goes to the class whose projected prototype ``p = s W`` is nearest (score ``x·p − ½‖p‖²``: the squared
distance up to a per-image constant, so one linear class table for the scorer). Closed form, one
regulariser λ chosen on validation. It is the whole plugin API in use: docs/methods.md, "Add your method".
"""

from __future__ import annotations

import torch

from zsl_scale.methods import Fitted, Hyper, MethodSpec, OnEpoch, TrainData


class LinProto:
    """Per phase: the seen classes' mean features and embeddings; ``fit`` solves the ridge for one λ."""

    def __init__(self, data: TrainData, seed: int) -> None:
        seen = torch.as_tensor(data.seen, device=data.device)
        onehot = (data.y[:, None] == seen[None, :]).double()  # [n, z]
        self.means = (onehot.T @ data.x.double()) / onehot.sum(0)[:, None]  # [z, d] class mean features
        self.s, self.emb = data.emb[seen].double(), data.emb  # [z, a] seen embeddings, [C, a] all

    def fit(self, hp: Hyper, on_epoch: OnEpoch | None = None) -> Fitted:
        eye = torch.eye(self.s.shape[1], dtype=torch.float64, device=self.s.device)
        w = torch.linalg.solve(self.s.T @ self.s + float(hp["lam"]) * eye, self.s.T @ self.means).float()

        def weights(classes):  # rows follow ``classes``: the projected prototypes and −½‖p‖²
            p = self.emb[torch.as_tensor(classes, device=self.emb.device)] @ w
            return p, -0.5 * (p * p).sum(dim=1)

        return Fitted(embed=lambda x: x, weights=weights)


def method() -> MethodSpec:
    """The entry point (``zsl_scale.methods`` group, name ``linproto``)."""
    return MethodSpec(name="linproto", display="LinProto", kind="closed-form",
                      reference="zsl-plugin-example (linear projection to nearest prototypes)",
                      make=LinProto, grid={"lam": [0.001, 0.01, 0.1, 1.0, 10.0]}, threads=1)
