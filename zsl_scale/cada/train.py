"""Training the CADA-VAE: warm-up schedules, the shared training step, the single-process loop, checkpoints.

The distributed trainer (``zsl_scale.distributed.trainer``) reuses :func:`train_step`, :func:`warmup_weights`
and :func:`make_optimizer`, so one process and N DDP workers optimise exactly the same objective.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from torch import Tensor

from zsl_scale.cada.model import CadaVae, LossTerms, LossWeights, ModelConfig, cada_loss
from zsl_scale.core import DataError, TrainConfig, atomic_path, load_torch_file


def warmup_weights(epoch: int, cfg: TrainConfig) -> LossWeights:
    """β, γ, δ at ``epoch`` (0-based), with the terms the variant does not use set to 0."""
    gamma = cfg.gamma.at(epoch) if cfg.variant in ("cada", "ca") else 0.0
    delta = cfg.delta.at(epoch) if cfg.variant in ("cada", "da") else 0.0
    return LossWeights(beta=cfg.beta.at(epoch), gamma=gamma, delta=delta)


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam with amsgrad over all parameters; the fused kernel where torch has one for the device.

    The fused implementation is numerically the same algorithm and several times faster on CPU for a
    model of this size (Adam's memory traffic dominates a batch-50 step).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    device_type = params[0].device.type
    fused = device_type in ("cpu", "cuda")
    return torch.optim.Adam(params, lr=cfg.lr, amsgrad=cfg.amsgrad, fused=fused)


def precision_autocast(batch: dict[str, Tensor], precision: str) -> torch.autocast:
    """The forward's autocast context: bf16 matrix products when ``precision == "bf16"``, else a no-op."""
    device_type = next(iter(batch.values())).device.type
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16")


def train_step(
    model: CadaVae,
    optimizer: torch.optim.Optimizer,
    batch: dict[str, Tensor],
    weights: LossWeights,
    generator: torch.Generator | None = None,
    loss_fn: Callable[..., LossTerms] = cada_loss,
    precision: str = "fp32",
) -> LossTerms:
    """One optimisation step on a batch of paired modalities; returns the (attached) loss terms.

    ``loss_fn(model, batch, weights, generator=...)`` defaults to :func:`cada_loss`; the distributed
    trainer passes one that calls its DistributedDataParallel wrapper, whose ``forward`` must run for
    DDP to synchronise gradients in the backward pass. ``precision="bf16"``: the forward runs under bf16
    autocast (matrix products in bf16, fp32 weights and gradients; :func:`cada_loss` keeps μ, logvar and
    every loss sum in fp32); the backward follows the forward's dtypes.
    """
    optimizer.zero_grad(set_to_none=True)
    with precision_autocast(batch, precision):
        terms = loss_fn(model, batch, weights, generator=generator)
    terms.total.backward()
    optimizer.step()
    return terms


EpochCallback = Callable[[int, dict[str, float]], None]


def train_vae(
    model: CadaVae,
    features: Tensor,
    labels: Tensor,
    class_embeddings: Tensor,
    cfg: TrainConfig,
    seed: int = 0,
    on_epoch: EpochCallback | None = None,
) -> list[dict[str, float]]:
    """Train on (image feature, embedding of its class) pairs; returns per-epoch mean loss terms.

    Each epoch visits every training image once in a seeded random order (the authors' code draws an
    independent random batch each step instead; a permutation has the same expectation and no repeats).
    All tensors must already be on the model's device.
    """
    if features.shape[0] != labels.shape[0]:
        raise DataError(f"{features.shape[0]} feature rows but {labels.shape[0]} labels")
    if features.shape[0] == 0:
        raise DataError("no training rows")
    torch.manual_seed(seed)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    optimizer = make_optimizer(model, cfg)
    n = features.shape[0]
    steps = math.ceil(n / cfg.batch_size)
    history: list[dict[str, float]] = []
    model.train()
    for epoch in range(cfg.epochs):
        weights = warmup_weights(epoch, cfg)
        perm = torch.randperm(n, generator=gen).to(features.device)
        sums = torch.zeros(5, dtype=torch.float64)
        for s in range(steps):
            idx = perm[s * cfg.batch_size : (s + 1) * cfg.batch_size]
            batch = {"image": features[idx], "class": class_embeddings[labels[idx]]}
            terms = train_step(model, optimizer, batch, weights, precision=cfg.precision)
            sums += terms.stacked().cpu()
        mean = (sums / n).tolist()
        row = {"epoch": epoch, "loss": mean[0], "recon": mean[1], "kl": mean[2], "cross": mean[3],
               "distance": mean[4], "beta": weights.beta, "gamma": weights.gamma, "delta": weights.delta}
        history.append(row)
        if on_epoch is not None:
            on_epoch(epoch, row)
    model.eval()
    return history


def save_model(path: str | Path, model: CadaVae, extra: dict[str, Any] | None = None) -> Path:
    """Save weights + architecture atomically, so that a checkpoint is self-describing."""
    payload = {"model_config": model.cfg.model_dump(mode="json"), "state_dict": model.state_dict(),
               "extra": extra or {}}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_model(path: str | Path, device: torch.device | str = "cpu") -> tuple[CadaVae, ModelConfig]:
    """Load a checkpoint written by :func:`save_model` (in eval mode, on ``device``)."""
    payload = load_torch_file(path, "model checkpoint", map_location=device)
    if not isinstance(payload, dict) or "model_config" not in payload or not isinstance(payload.get("state_dict"),
                                                                                         dict):
        raise DataError(f"{path} is not a zsl-scale model checkpoint")
    try:
        cfg = ModelConfig.model_validate(payload["model_config"])
        model = CadaVae(cfg).to(device)
        model.load_state_dict(payload["state_dict"])
    except (ValidationError, RuntimeError, TypeError) as exc:  # other architecture, other tensors
        raise DataError(f"{path} is not a zsl-scale model checkpoint of a known architecture "
                        f"({' '.join(str(exc).split())[:160]})") from None
    model.eval()
    return model, cfg
