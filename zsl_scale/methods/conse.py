"""ConSE (Norouzi et al., ICLR 2014): a convex combination of seen-class embeddings, no new parameters.

A softmax classifier p(y | x) is trained over the seen classes; an image embeds as
``f(x) = Σ_{t≤T} p(y_t | x) s(y_t) / Σ_{t≤T} p(y_t | x)`` over its T most likely seen labels, and is
assigned the class whose embedding is most cosine-similar to ``f(x)``. T (the paper uses 10) and the
softmax's epochs are chosen on validation; the softmax itself does not depend on T, so its per-epoch
snapshots are trained once per phase and shared by every T of the grid.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from zsl_scale.cada import fit_linear_softmax
from zsl_scale.core import ClassifierConfig
from zsl_scale.methods.base import Fitted, Hyper, OnEpoch, TrainData, normalize_rows

GRID = {"T": [1, 3, 10], "epochs": [15]}


def conse_embed(probs: Tensor, seen_emb: Tensor, top: int) -> Tensor:
    """``f(x)`` of each row of ``probs`` ``[n, z]`` from the unit-norm seen embeddings ``[z, E]``, unit-normed."""
    p, idx = probs.topk(min(top, probs.shape[1]), dim=1)
    f = torch.einsum("nt,nte->ne", p, seen_emb[idx]) / p.sum(dim=1, keepdim=True)
    return normalize_rows(f)


class ConseTrainer:
    """Per-epoch snapshots of the seen-class softmax, then ConSE's embedding for any T."""

    def __init__(self, data: TrainData, seed: int) -> None:
        self.data, self.seed = data, seed
        self.classes = data.seen
        cls_t = torch.as_tensor(self.classes, device=data.device)
        self.seen_emb = normalize_rows(data.emb[cls_t])
        self.emb_unit = normalize_rows(data.emb)
        lookup = torch.full((data.emb.shape[0],), -1, dtype=torch.long, device=data.device)
        lookup[cls_t] = torch.arange(len(self.classes), device=data.device)
        self.y_local = lookup[data.y]
        self.snapshots: list[nn.Linear] = []

    def _train(self, epochs: int) -> None:
        if len(self.snapshots) >= epochs:
            return
        self.snapshots = []

        def keep(epoch: int, layer: nn.Linear) -> None:
            snap = nn.Linear(layer.in_features, layer.out_features).to(layer.weight.device)
            snap.load_state_dict(layer.state_dict())
            self.snapshots.append(snap)

        fit_linear_softmax(self.data.x, self.y_local, len(self.classes), ClassifierConfig(), epochs,
                           seed=self.seed, on_epoch=keep)

    def _fitted(self, layer: nn.Linear, top: int, epoch: int) -> Fitted:
        seen_emb, emb = self.seen_emb, self.emb_unit
        return Fitted(embed=lambda q: conse_embed(torch.softmax(layer(q), dim=1), seen_emb, top),
                      weights=lambda c: (emb[torch.as_tensor(c, device=emb.device)], None),
                      info={"epochs": epoch})

    def fit(self, hp: Hyper, on_epoch: OnEpoch | None = None) -> Fitted:
        epochs, top = int(hp["epochs"]), int(hp["T"])
        self._train(epochs)
        if on_epoch is not None:
            for e in range(1, epochs + 1):
                on_epoch(e, self._fitted(self.snapshots[e - 1], top, e))
        return self._fitted(self.snapshots[epochs - 1], top, epochs)
