"""DeViSE, SJE and ALE ranking losses against hand-computed values; the span reparametrisation is exact."""

from __future__ import annotations

import numpy as np
import torch

from zsl_scale.methods.base import TrainData
from zsl_scale.methods.compat import CompatTrainer, ale_loss, devise_loss, sje_loss

# Two images, three classes. Row 0 (true class 0): s = [1.0, 0.5, 0.95]; row 1 (true class 2): s = [0.2, -1.0, 0.3].
SCORES = torch.tensor([[1.0, 0.5, 0.95], [0.2, -1.0, 0.3]])
Y = torch.tensor([0, 2])


def test_devise_hinge_rank_loss_by_hand() -> None:
    # row 0: max(0, .1 - 1 + .5) + max(0, .1 - 1 + .95) = 0 + 0.05; row 1: max(0, .1 - .3 + .2) + 0 = 0.0
    assert devise_loss(SCORES, Y).item() == pytest_approx((0.05 + 0.0) / 2)


def test_sje_structured_svm_loss_by_hand() -> None:
    # row 0: max(1 + 0.5, 1 + 0.95, 0 + 1.0) - 1.0 = 0.95; row 1: max(1.2, 0.0, 0.3) - 0.3 = 0.9
    assert sje_loss(SCORES, Y).item() == pytest_approx((0.95 + 0.9) / 2)


def test_ale_weighted_rank_loss_by_hand() -> None:
    # row 0: violations 1 - 1 + .5 = .5 and 1 - 1 + .95 = .95 → r = 2, weight (1 + 1/2) / 2 = .75 → 1.0875
    # row 1: 1 - .3 + .2 = .9 and 1 - .3 - 1 = -.3 → 0: r = 1, weight 1 → 0.9
    assert ale_loss(SCORES, Y).item() == pytest_approx((0.75 * 1.45 + 0.9) / 2)


def test_ale_with_no_violation_is_zero() -> None:
    assert ale_loss(torch.tensor([[5.0, 0.0, 0.0]]), torch.tensor([0])).item() == 0.0


def test_span_reparametrisation_equals_full_bilinear_sgd() -> None:
    """One SGD step on A (W = A·S_tr) moves xᵀWs exactly as one step on the full W from zero would."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand((8, 4), generator=g)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    emb = torch.nn.functional.normalize(torch.randn((4, 6), generator=g), dim=1)
    data = TrainData(x, y, emb, unseen=np.array([3]))
    # Full W, one step of batch-gradient SGD on SJE from zero.
    w = torch.zeros((4, 6), requires_grad=True)
    sje_loss(x @ w @ emb[:3].T, y).backward()
    with torch.no_grad():
        w_new = -0.5 * w.grad
    # The trainer with one epoch of one batch (all 8 rows) at the same rate.
    trainer = CompatTrainer(data, seed=0, loss="sje")
    fitted = trainer.fit({"lr": 0.5, "epochs": 1})
    got = fitted.embed(x) @ fitted.weights(np.arange(4))[0].T
    torch.testing.assert_close(got, x @ w_new @ emb.T, rtol=1e-5, atol=1e-6)


def pytest_approx(v: float):
    import pytest

    return pytest.approx(v, abs=1e-6)


