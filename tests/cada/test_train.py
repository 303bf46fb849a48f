"""Warm-up schedules, the variants, and checkpoints."""

from __future__ import annotations

import pytest
import torch

from zsl_scale.cada.model import CadaVae, paper_config
from zsl_scale.cada.train import load_model, save_model, train_vae, warmup_weights
from zsl_scale.core.config import TrainConfig
from zsl_scale.core.errors import DataError

# (epoch, β, γ, δ) with the authors' ramps: β 0→0.25 over 0-93, γ 0→2.37 over 21-75, δ 0→8.13 over 6-22.
EXPECTED = [
    (0, 0.0, 0.0, 0.0),
    (6, 6 / 93 * 0.25, 0.0, 0.0),
    (21, 21 / 93 * 0.25, 0.0, 15 / 16 * 8.13),
    (22, 22 / 93 * 0.25, 1 / 54 * 2.37, 8.13),
    (75, 75 / 93 * 0.25, 2.37, 8.13),
    (90, 90 / 93 * 0.25, 2.37, 8.13),
    (99, 0.25, 2.37, 8.13),
]


@pytest.mark.parametrize(("epoch", "beta", "gamma", "delta"), EXPECTED)
def test_warmups(epoch: int, beta: float, gamma: float, delta: float) -> None:
    w = warmup_weights(epoch, TrainConfig())
    assert (w.beta, w.gamma, w.delta) == pytest.approx((beta, gamma, delta), abs=1e-12)


def test_variants_switch_terms_off() -> None:
    assert warmup_weights(99, TrainConfig(variant="ca")).delta == 0.0
    assert warmup_weights(99, TrainConfig(variant="ca")).gamma == pytest.approx(2.37)
    assert warmup_weights(99, TrainConfig(variant="da")).gamma == 0.0
    assert warmup_weights(99, TrainConfig(variant="da")).delta == pytest.approx(8.13)
    vae = warmup_weights(99, TrainConfig(variant="vae"))
    assert (vae.gamma, vae.delta) == (0.0, 0.0)


def test_shortened_schedule_keeps_shape() -> None:
    short = TrainConfig().shortened(20)
    assert short.epochs == 20
    assert (short.delta.start, short.delta.end) == (1, 4)
    assert warmup_weights(19, short).beta == pytest.approx(0.25)


def _toy(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(60, 12, generator=g)
    y = torch.arange(60) % 3
    emb = torch.rand(3, 5, generator=g)
    return x, y, emb


def test_training_reduces_loss_and_is_deterministic(tmp_path) -> None:
    x, y, emb = _toy()
    cfg = TrainConfig(epochs=4, batch_size=10)
    hist = []
    params = []
    for _ in range(2):
        torch.manual_seed(0)
        model = CadaVae(paper_config(12, 5))
        hist.append(train_vae(model, x, y, emb, cfg, seed=7))
        params.append(torch.cat([p.flatten() for p in model.parameters()]))
    assert hist[0][-1]["recon"] < hist[0][0]["recon"]
    assert [h["loss"] for h in hist[0]] == [h["loss"] for h in hist[1]]
    assert torch.equal(params[0], params[1])
    path = save_model(tmp_path / "m.pt", model, extra={"note": "x"})
    loaded, cfg2 = load_model(path)
    assert cfg2 == model.cfg
    for a, b in zip(loaded.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_bad_training_input() -> None:
    x, y, emb = _toy()
    with pytest.raises(DataError, match="labels"):
        train_vae(CadaVae(paper_config(12, 5)), x, y[:10], emb, TrainConfig(epochs=1))


def test_load_model_rejects_non_checkpoint(tmp_path) -> None:
    p = tmp_path / "x.pt"
    torch.save({"foo": 1}, p)
    with pytest.raises(DataError, match="not a zsl-scale model checkpoint"):
        load_model(p)


def test_bf16_precision_keeps_fp32_state_and_tracks_the_fp32_loss() -> None:
    """bf16 autocast: weights, gradients and loss sums stay fp32; the first epoch's loss (same seed, same
    batches) is the fp32 one up to bf16 rounding of the products (8 mantissa bits: ≤ 2 % here), and it learns."""
    x, y, emb = _toy()
    hist = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = CadaVae(paper_config(12, 5))
        hist[precision] = train_vae(model, x, y, emb, TrainConfig(epochs=4, batch_size=10, precision=precision),
                                    seed=7)
        assert all(p.dtype == torch.float32 for p in model.parameters())
    first = hist["fp32"][0]["loss"]
    assert hist["bf16"][0]["loss"] == pytest.approx(first, rel=0.02) and hist["bf16"][0]["loss"] != first
    assert hist["bf16"][-1]["recon"] < hist["bf16"][0]["recon"]
