"""Latent sampling and the final linear softmax classifier (the "latents" step of small benchmarks).

After the VAE is trained, a linear softmax classifier is fit on latent features: noisy encodings of
image features for seen classes (200 per class) and of class embeddings for unseen classes (400 per
class). Test images are classified from the image encoder's μ.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from zsl_scale.cada.model import CadaVae
from zsl_scale.core import ClassifierConfig


def sample_per_class(x: Tensor, y: Tensor, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Exactly ``n`` rows per class: a random subset, or the rows repeated and then subset (authors' rule).

    A class with fewer than ``n`` rows is tiled ``ceil(n / rows)`` times before the random draw, so every
    row appears at least ⌊n / rows⌋ times.
    """
    xs, ys = [], []
    for c in torch.unique(y).tolist():
        rows = x[y == c]
        reps = max(1, math.ceil(n / rows.shape[0]))
        pool = rows.repeat(reps, 1)
        idx = torch.randperm(pool.shape[0], generator=generator)[:n].to(pool.device)
        xs.append(pool[idx])
        ys.append(torch.full((n,), c, dtype=torch.long, device=y.device))
    return torch.cat(xs), torch.cat(ys)


@torch.no_grad()
def encode(
    model: CadaVae, modality: str, x: Tensor, noise: bool, generator: torch.Generator | None = None,
    batch_size: int = 4096,
) -> Tensor:
    """Latents of ``x``: noisy samples (classifier training) or μ (test), computed in batches."""
    model.eval()
    out = []
    for i in range(0, x.shape[0], batch_size):
        mu, logvar = model.encode(modality, x[i : i + batch_size])
        if noise:
            eps = torch.randn((mu.shape[0], 1), generator=generator).to(mu.device, mu.dtype)
            out.append(mu + model.std(logvar) * eps)
        else:
            out.append(mu)
    return torch.cat(out) if out else x.new_zeros((0, model.cfg.latent_dim))


def fit_linear_softmax(
    x: Tensor,
    y: Tensor,
    n_classes: int,
    cfg: ClassifierConfig,
    epochs: int,
    seed: int,
    on_epoch: Callable[[int, nn.Linear], None] | None = None,
) -> nn.Linear:
    """Fit logits = W·z + b with cross-entropy (log-softmax + NLL), Adam(lr, betas), batch 32.

    ``on_epoch(epoch, layer)`` runs after each epoch (1-based) — the validation search uses it to score
    every epoch count from one training run; the final fit is a fresh run of exactly ``epochs``.
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    layer = nn.Linear(x.shape[1], n_classes).to(x.device)
    opt = torch.optim.Adam(layer.parameters(), lr=cfg.lr, betas=cfg.betas, fused=x.device.type in ("cpu", "cuda"))
    loss_fn = nn.CrossEntropyLoss()
    n = x.shape[0]
    for epoch in range(1, epochs + 1):
        perm = torch.randperm(n, generator=gen).to(x.device)
        for i in range(0, n, cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            opt.zero_grad(set_to_none=True)
            loss_fn(layer(x[idx]), y[idx]).backward()
            opt.step()
        if on_epoch is not None:
            with torch.no_grad():
                on_epoch(epoch, layer)
    return layer


@torch.no_grad()
def classify_latents(layer: nn.Linear, z: Tensor, batch_size: int = 65536) -> Tensor:
    """Arg-max class of each latent (ties → lowest index, torch's ``argmax`` rule)."""
    return torch.cat([layer(z[i : i + batch_size]).argmax(dim=1) for i in range(0, z.shape[0], batch_size)])
