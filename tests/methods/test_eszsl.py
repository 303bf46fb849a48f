"""ESZSL's eigendecomposed, low-rank closed form against two direct solves on a tiny problem."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zsl_scale.methods.base import TrainData
from zsl_scale.methods.eszsl import EszslTrainer, eszsl_direct


def _tiny() -> TrainData:
    g = torch.Generator().manual_seed(0)
    x = torch.rand((12, 5), generator=g)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2])
    emb = torch.randn((4, 3), generator=g)
    return TrainData(x, y, emb, unseen=np.array([3]))


@pytest.mark.parametrize(("gamma", "lam"), [(1e-3, 1e-3), (1.0, 10.0), (1e3, 1e-1)])
def test_closed_form_matches_direct_solve(gamma: float, lam: float) -> None:
    data = _tiny()
    y_pm = torch.where(data.y[:, None] == torch.arange(3)[None, :], 1.0, -1.0)
    want = eszsl_direct(data.x, y_pm, data.emb[:3], gamma, lam)
    got = EszslTrainer(data, seed=0).solve(gamma, lam)
    assert want.shape == (5, 3)
    torch.testing.assert_close(got, want, rtol=1e-7, atol=1e-9)


def test_fitted_scores_are_x_v_s() -> None:
    data = _tiny()
    trainer = EszslTrainer(data, seed=0)
    fitted = trainer.fit({"gamma": 1.0, "lam": 1.0})
    w, b = fitted.weights(np.array([3, 0]))
    logits = fitted.embed(data.x[:2]) @ w.T
    want = data.x[:2].double() @ trainer.solve(1.0, 1.0) @ data.emb[[3, 0]].double().T
    assert b is None
    torch.testing.assert_close(logits.double(), want, rtol=1e-5, atol=1e-6)
