"""CADA-VAE: one VAE per modality, aligned by cross-reconstruction (CA) and distribution alignment (DA).

Exactly the paper's model (Schönfeld et al., CVPR 2019) as detailed in docs/design.md §1, generalised to
M ≥ 2 modalities:

    L = Σ_i |x_i − D_i(z_i)|  +  β Σ_i KL_i  +  γ Σ_i Σ_{j≠i} |x_j − D_j(z_i)|  +  δ Σ_{i<j} W_ij

with L1 terms summed over batch and dimensions (as ``nn.L1Loss(reduction="sum")`` in the authors'
code), KL_i the closed-form KL(q_i(z|x_i) ‖ N(0, I)) summed over the batch, and W_ij the closed-form
2-Wasserstein distance between the diagonal Gaussians q_i and q_j, per sample, summed over the batch.

Decisions (see docs/cada.md):

* **DA counts each unordered pair once** (``i < j``), like the authors' code; the paper's double sum
  ``Σ_{i≠j}`` counts each pair twice, i.e. it is the same loss with δ doubled.
* **Reparametrisation** draws one scalar ε per sample, shared by all latent dimensions (the authors'
  "variant"). By default z = μ + exp(½·logvar)·ε, consistent with the KL and W terms, which treat
  exp(logvar) as the variance. ``reparam="authors"`` reproduces the authors' code, z = μ + exp(logvar)·ε.
* Each decoder is applied once to the stacked latents of all modalities, which computes the
  reconstruction and every cross-reconstruction through it in a single matrix product per layer —
  the same numbers as separate calls, but about 2× fewer kernel launches and better-shaped GEMMs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from pydantic import BaseModel, Field, model_validator
from torch import Tensor, nn

from zsl_scale.core import Reparam


class ModalitySpec(BaseModel):
    """One modality: its input size and the hidden layer sizes of its encoder and decoder."""

    name: str
    input_dim: int = Field(gt=0)
    encoder_hidden: list[int] = Field(min_length=1)
    decoder_hidden: list[int] = Field(min_length=1)


class ModelConfig(BaseModel):
    """Architecture of a CADA-VAE; serialised into checkpoints and results files."""

    latent_dim: int = Field(default=64, gt=0)
    modalities: list[ModalitySpec] = Field(min_length=2)
    reparam: Reparam = "consistent"
    init_gain: float = 0.5

    @model_validator(mode="after")
    def _unique_names(self) -> ModelConfig:
        names = [m.name for m in self.modalities]
        if len(set(names)) != len(names):
            raise ValueError(f"modality names must be unique, got {names}")
        return self

    def modality(self, name: str) -> ModalitySpec:
        for m in self.modalities:
            if m.name == name:
                return m
        raise KeyError(f"unknown modality {name!r}; have {[m.name for m in self.modalities]}")


def paper_config(image_dim: int, class_dim: int, imagenet: bool = False, **overrides) -> ModelConfig:
    """The paper's architecture (docs/design.md §1): 64-d latent on small benchmarks, 128-d on ImageNet.

    Small benchmarks: image encoder 1560, image decoder 1660, class encoder 1450, class decoder 665
    (the authors' code; the paper says 660). ImageNet: two hidden layers per encoder, image decoder
    1160 → 1660, class decoder 460 → 660.
    """
    if imagenet:
        mods = [
            ModalitySpec(name="image", input_dim=image_dim, encoder_hidden=[1560, 1560],
                         decoder_hidden=[1160, 1660]),
            ModalitySpec(name="class", input_dim=class_dim, encoder_hidden=[1450, 1450],
                         decoder_hidden=[460, 660]),
        ]
        return ModelConfig(latent_dim=128, modalities=mods, **overrides)
    mods = [
        ModalitySpec(name="image", input_dim=image_dim, encoder_hidden=[1560], decoder_hidden=[1660]),
        ModalitySpec(name="class", input_dim=class_dim, encoder_hidden=[1450], decoder_hidden=[665]),
    ]
    return ModelConfig(latent_dim=64, modalities=mods, **overrides)


def _mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them and none after the last (decoders have no output activation)."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """MLP trunk (ReLU after every hidden layer) and one linear head producing [μ, logvar]."""

    def __init__(self, input_dim: int, hidden: list[int], latent_dim: int) -> None:
        super().__init__()
        self.trunk = nn.Sequential(_mlp([input_dim, *hidden]), nn.ReLU())
        # μ and logvar heads fused into one Linear: same parameters as two heads, one GEMM.
        self.head = nn.Linear(hidden[-1], 2 * latent_dim)
        self.latent_dim = latent_dim

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        out = self.head(self.trunk(x))
        return out[:, : self.latent_dim], out[:, self.latent_dim :]


class CadaVae(nn.Module):
    """M modality-specific VAEs sharing one latent space."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.names = [m.name for m in cfg.modalities]
        self.encoders = nn.ModuleDict(
            {m.name: Encoder(m.input_dim, m.encoder_hidden, cfg.latent_dim) for m in cfg.modalities}
        )
        self.decoders = nn.ModuleDict(
            {m.name: _mlp([cfg.latent_dim, *m.decoder_hidden, m.input_dim]) for m in cfg.modalities}
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The authors' init: xavier_uniform (gain 0.5) weights, zero biases, for every Linear."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight, gain=self.cfg.init_gain)
                nn.init.zeros_(module.bias)
        # The fused [μ, logvar] head is two heads of the paper: init each half with its own fan-out.
        with torch.no_grad():
            for enc in self.encoders.values():
                for half in enc.head.weight.chunk(2, dim=0):
                    nn.init.xavier_uniform_(half, gain=self.cfg.init_gain)

    def encode(self, name: str, x: Tensor) -> tuple[Tensor, Tensor]:
        """(μ, logvar) of modality ``name``."""
        return self.encoders[name](x)

    def decode(self, name: str, z: Tensor) -> Tensor:
        """Reconstruction of modality ``name`` from latents ``z``."""
        return self.decoders[name](z)

    def std(self, logvar: Tensor) -> Tensor:
        """The σ used for sampling: exp(½·logvar) (consistent) or exp(logvar) (the authors' code)."""
        return torch.exp(logvar) if self.cfg.reparam == "authors" else torch.exp(0.5 * logvar)

    def reparameterize(
        self, mu: Tensor, logvar: Tensor, noise: bool = True, generator: torch.Generator | None = None
    ) -> Tensor:
        """z = μ + σ·ε with one scalar ε per sample shared by all dimensions; μ when ``noise`` is off."""
        if not noise:
            return mu
        eps = torch.randn((mu.shape[0], 1), device=mu.device, dtype=mu.dtype, generator=generator)
        return mu + self.std(logvar) * eps


@dataclass(frozen=True)
class LossWeights:
    """β (KL), γ (cross-reconstruction) and δ (distribution alignment) at one epoch."""

    beta: float
    gamma: float
    delta: float


@dataclass
class LossTerms:
    """The loss and its parts, each summed over the batch (tensors, so that ``total`` can backprop)."""

    total: Tensor
    recon: Tensor
    kl: Tensor
    cross: Tensor
    distance: Tensor

    def stacked(self) -> Tensor:
        """``[total, recon, kl, cross, distance]`` as one detached float64 tensor (for per-epoch sums)."""
        return torch.stack([self.total, self.recon, self.kl, self.cross, self.distance]).detach().to(torch.float64)

    def detached(self) -> dict[str, float]:
        return {k: float(getattr(self, k).detach()) for k in ("total", "recon", "kl", "cross", "distance")}


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(μ, exp(logvar)) ‖ N(0, I)), summed over dimensions and batch."""
    return -0.5 * torch.sum(1.0 + logvar - mu.pow(2) - logvar.exp())


def wasserstein_distance(mu1: Tensor, logvar1: Tensor, mu2: Tensor, logvar2: Tensor) -> Tensor:
    """Closed-form W2 between diagonal Gaussians, per sample, summed over the batch.

    W2(N(μ1, Σ1), N(μ2, Σ2)) = (‖μ1 − μ2‖² + ‖Σ1^½ − Σ2^½‖_F²)^½, and for diagonal Σ the Frobenius
    term is ‖σ1 − σ2‖² with σ = exp(½·logvar).
    """
    d2 = (mu1 - mu2).pow(2).sum(dim=1) + (torch.exp(0.5 * logvar1) - torch.exp(0.5 * logvar2)).pow(2).sum(dim=1)
    return torch.sqrt(d2).sum()


def cada_loss(
    model: CadaVae, batch: dict[str, Tensor], weights: LossWeights, generator: torch.Generator | None = None
) -> LossTerms:
    """The CADA-VAE objective on one batch of paired samples (``batch[name]`` for every modality)."""
    names = model.names
    mus, logvars, zs = {}, {}, []
    for name in names:
        mu, logvar = model.encode(name, batch[name])
        mu, logvar = mu.float(), logvar.float()  # no-op in fp32; under bf16 autocast: KL, σ, W2 in fp32
        mus[name], logvars[name] = mu, logvar
        zs.append(model.reparameterize(mu, logvar, noise=True, generator=generator))
    n = zs[0].shape[0]
    z_all = torch.cat(zs, dim=0)  # [M·B, latent]: row block i holds z_i

    zero = z_all.new_zeros(())
    recon, cross = zero, zero
    for j, name in enumerate(names):
        x_hat = model.decode(name, z_all).view(len(names), n, -1)  # D_j(z_i) for every i
        err = (x_hat - batch[name].unsqueeze(0)).abs().sum(dim=(1, 2))  # L1 per source modality i
        recon = recon + err[j]
        cross = cross + (err.sum() - err[j])

    kl = zero
    for name in names:
        kl = kl + kl_divergence(mus[name], logvars[name])
    distance = zero
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            a, b = names[i], names[j]
            distance = distance + wasserstein_distance(mus[a], logvars[a], mus[b], logvars[b])

    total = recon + weights.beta * kl
    if weights.gamma > 0:
        total = total + weights.gamma * cross
    if weights.delta > 0:
        total = total + weights.delta * distance
    return LossTerms(total=total, recon=recon, kl=kl, cross=cross, distance=distance)
