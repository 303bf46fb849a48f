"""Loss terms against hand-computed values, the W2 closed form against a direct computation,
the reparametrisation switch, and the architecture of the paper."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.linalg import sqrtm

from zsl_scale.cada.model import (
    CadaVae,
    LossWeights,
    ModalitySpec,
    ModelConfig,
    cada_loss,
    kl_divergence,
    paper_config,
    wasserstein_distance,
)


def tiny_model(reparam: str = "consistent", m: int = 2) -> CadaVae:
    mods = [ModalitySpec(name=n, input_dim=d, encoder_hidden=[5], decoder_hidden=[4])
            for n, d in zip(["image", "class", "third"][:m], [3, 2, 4][:m], strict=True)]
    return CadaVae(ModelConfig(latent_dim=2, modalities=mods, reparam=reparam))


def constant_model(mu: dict[str, float], logvar: dict[str, float], out_bias: dict[str, float]) -> CadaVae:
    """Encoders output constant (μ, logvar); decoders output a constant — every term is hand-computable."""
    model = tiny_model()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        for name, enc in model.encoders.items():
            enc.head.bias[:2] = mu[name]
            enc.head.bias[2:] = logvar[name]
        for name, dec in model.decoders.items():
            dec[-1].bias[:] = out_bias[name]
    return model


def test_kl_hand_computed() -> None:
    mu = torch.tensor([[1.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(2.0)]])
    # -½ Σ (1 + logvar − μ² − e^logvar) = -½ [(1+0-1-1) + (1+ln2-0-2)] = 1 − ln2 / 2
    assert kl_divergence(mu, logvar).item() == pytest.approx(1 - math.log(2) / 2, abs=1e-6)


def test_wasserstein_hand_computed() -> None:
    mu1, lv1 = torch.zeros(1, 2), torch.zeros(1, 2)
    mu2, lv2 = torch.tensor([[3.0, 4.0]]), torch.tensor([[math.log(4.0), 0.0]])
    # ‖μ1−μ2‖² = 25, ‖σ1−σ2‖² = (1−2)² + 0 = 1
    assert wasserstein_distance(mu1, lv1, mu2, lv2).item() == pytest.approx(math.sqrt(26), abs=1e-5)


def test_wasserstein_matches_general_formula() -> None:
    """W2² = ‖μ1−μ2‖² + tr(Σ1 + Σ2 − 2 (Σ2^½ Σ1 Σ2^½)^½), computed with matrix square roots."""
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
    lv1, lv2 = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
    direct = 0.0
    for b in range(4):
        s1, s2 = np.diag(np.exp(lv1[b])), np.diag(np.exp(lv2[b]))
        r2 = sqrtm(s2)
        cross = np.real(sqrtm(r2 @ s1 @ r2))
        w2 = np.sum((mu1[b] - mu2[b]) ** 2) + np.trace(s1 + s2 - 2 * cross)
        direct += math.sqrt(w2)
    t = [torch.tensor(a, dtype=torch.float64) for a in (mu1, lv1, mu2, lv2)]
    assert wasserstein_distance(*t).item() == pytest.approx(direct, rel=1e-9)


def test_loss_terms_hand_computed() -> None:
    model = constant_model(mu={"image": 1.0, "class": -1.0}, logvar={"image": 0.0, "class": math.log(4.0)},
                           out_bias={"image": 0.5, "class": -2.0})
    x_img = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    x_cls = torch.tensor([[1.0, -1.0], [2.0, 0.0]])
    terms = cada_loss(model, {"image": x_img, "class": x_cls}, LossWeights(beta=0.5, gamma=2.0, delta=3.0),
                      generator=torch.Generator().manual_seed(0))
    # Decoders ignore z (zero weights): D_image ≡ 0.5, D_class ≡ −2.
    l1_img = float((x_img - 0.5).abs().sum())  # 0.5+1.5+2.5+0.5*3 = 6.0
    l1_cls = float((x_cls + 2.0).abs().sum())  # 3+1+4+2 = 10
    assert terms.recon.item() == pytest.approx(l1_img + l1_cls)
    assert terms.cross.item() == pytest.approx(l1_img + l1_cls)  # D_j(z_i) is the same constant
    # KL per sample: image μ=1, logvar=0 → ½·2 = 1; class μ=−1, logvar=ln4 → −½·2(1+ln4−1−4) = 4 − ln4
    kl = 2 * (1.0 + (4 - math.log(4)))
    assert terms.kl.item() == pytest.approx(kl, rel=1e-6)
    # W2 per sample: ‖(1,1)−(−1,−1)‖² = 8, ‖σ: (1,1) − (2,2)‖² = 2 → √10, two samples
    assert terms.distance.item() == pytest.approx(2 * math.sqrt(10), rel=1e-6)
    expected = l1_img + l1_cls + 0.5 * kl + 2.0 * (l1_img + l1_cls) + 3.0 * 2 * math.sqrt(10)
    assert terms.total.item() == pytest.approx(expected, rel=1e-6)


def test_cross_reconstruction_is_over_ordered_pairs_of_m_modalities() -> None:
    """With 3 modalities the cross term has 6 ordered pairs and DA 3 unordered pairs."""
    model = tiny_model(m=3)
    torch.manual_seed(0)
    batch = {"image": torch.randn(4, 3), "class": torch.randn(4, 2), "third": torch.randn(4, 4)}
    terms = cada_loss(model, batch, LossWeights(0.1, 1.0, 1.0), generator=torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(1)
    mus, lvs, zs = {}, {}, {}
    for n in model.names:
        mus[n], lvs[n] = model.encode(n, batch[n])
        zs[n] = model.reparameterize(mus[n], lvs[n], generator=gen)
    cross = sum((batch[j] - model.decode(j, zs[i])).abs().sum() for i in model.names for j in model.names if i != j)
    recon = sum((batch[n] - model.decode(n, zs[n])).abs().sum() for n in model.names)
    names = model.names
    da = sum(wasserstein_distance(mus[a], lvs[a], mus[b], lvs[b])
             for k, a in enumerate(names) for b in names[k + 1:])
    assert terms.cross.item() == pytest.approx(cross.item(), rel=1e-5)
    assert terms.recon.item() == pytest.approx(recon.item(), rel=1e-5)
    assert terms.distance.item() == pytest.approx(da.item(), rel=1e-5)


@pytest.mark.parametrize(("reparam", "sigma"), [("consistent", 2.0), ("authors", 4.0)])
def test_reparametrisation_single_noise_and_switch(reparam: str, sigma: float) -> None:
    model = tiny_model(reparam)
    mu = torch.zeros(5, 2)
    logvar = torch.full((5, 2), math.log(4.0))
    z = model.reparameterize(mu, logvar, generator=torch.Generator().manual_seed(3))
    eps = torch.randn((5, 1), generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(z, (sigma * eps).expand(5, 2))  # one ε per sample, shared by all dims
    assert torch.equal(model.reparameterize(mu, logvar, noise=False), mu)


def test_paper_architecture_sizes() -> None:
    small = CadaVae(paper_config(2048, 312))
    enc = small.encoders["image"]
    assert [m.out_features for m in enc.trunk[0] if isinstance(m, torch.nn.Linear)] == [1560]
    assert enc.head.out_features == 128  # μ and logvar heads of 64 each
    assert [m.out_features for m in small.decoders["class"] if isinstance(m, torch.nn.Linear)] == [665, 312]
    big = CadaVae(paper_config(2048, 384, imagenet=True))
    assert big.cfg.latent_dim == 128
    assert [m.out_features for m in big.decoders["image"] if isinstance(m, torch.nn.Linear)] == [1160, 1660, 2048]
    assert [m.out_features for m in big.decoders["class"] if isinstance(m, torch.nn.Linear)] == [460, 660, 384]
    assert [m.out_features for m in big.encoders["class"].trunk[0] if isinstance(m, torch.nn.Linear)] == [1450, 1450]


def test_init_is_xavier_gain_half_zero_bias() -> None:
    model = CadaVae(paper_config(1280, 1024))
    head = model.encoders["image"].head
    bound = 0.5 * math.sqrt(6.0 / (1560 + 64))  # each of the μ / logvar heads has fan_out 64
    assert head.weight.abs().max().item() <= bound + 1e-7
    assert head.weight.abs().max().item() > 0.9 * bound
    assert all(m.bias.abs().sum().item() == 0 for m in model.modules() if isinstance(m, torch.nn.Linear))
