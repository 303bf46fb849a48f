"""Low-precision candidate search + exact re-score == exact fp32 scoring, on ties and near-ties, every query."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from zsl_scale.scoring.exact import exact_logits, query_slack, search_bound
from zsl_scale.scoring.kernels import ChunkedKernel, pick_precision


def dense_exact_topk(q: np.ndarray, w: np.ndarray, b: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Reference on data whose logits are exact in float32: stable sort of the dense logit matrix."""
    logits = torch.from_numpy(q).double() @ torch.from_numpy(w).double().T + torch.from_numpy(b).double()
    logits = logits.float()
    order = torch.argsort(logits, dim=1, descending=True, stable=True)[:, :k]
    return logits.gather(1, order).numpy(), order.numpy()


def near_tie_data(seed: int, n: int, c: int, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Classes in groups of 3 that differ by 2⁻¹² in one coordinate: bf16 cannot tell them apart (its
    step at 3 is 2⁻⁶), fp32 can, and every logit is exact in float32. Integer parts make exact ties too."""
    rng = np.random.default_rng(seed)
    q = rng.integers(-8, 9, (n, d)).astype(np.float32)
    base = rng.integers(-3, 4, (c // 3 + 1, d)).astype(np.float32)
    w = np.repeat(base, 3, axis=0)[:c].copy()
    w[:, 0] += np.tile(np.array([0.0, 2.0**-12, -(2.0**-12)], np.float32), c // 3 + 1)[:c]
    b = rng.integers(-1, 2, c).astype(np.float32) * np.float32(2.0**-11)
    return q, w, b


@pytest.mark.parametrize("k", [1, 4])
def test_bf16_and_fp32_search_equal_exact_scoring_on_near_ties(k: int) -> None:
    q, w, b = near_tie_data(0, 400, 301, 16)
    ref_v, ref_i = dense_exact_topk(q, w, b, k)
    # the data does what it claims: bf16 logits tie where the exact ones differ, and exact ties exist
    low = (torch.from_numpy(q).bfloat16().float() @ torch.from_numpy(w).bfloat16().float().T).numpy()
    exact = q.astype(np.float64) @ w.astype(np.float64).T + b
    assert (low.argmax(1) != exact.argmax(1)).mean() > 0.3
    assert ((exact == exact.max(1, keepdims=True)).sum(1) > 1).mean() > 0.05
    for precision in ("fp32", "bf16"):
        kern = ChunkedKernel(w, b, torch.device("cpu"), class_chunk=64, query_chunk=53, threads=2,
                             precision=precision)
        res = kern.run(q, k)
        kern.close()
        np.testing.assert_array_equal(res.indices, ref_i, err_msg=precision)
        np.testing.assert_array_equal(res.values, ref_v, err_msg=precision)


def test_bf16_equals_fp32_on_random_floats_all_queries() -> None:
    rng = np.random.default_rng(3)
    q = rng.standard_normal((1500, 24), dtype=np.float32)
    w = rng.standard_normal((700, 24), dtype=np.float32)
    w[1::2] = w[::2] + np.float32(1e-4) * rng.standard_normal((350, 24), dtype=np.float32)  # near-ties
    b = rng.standard_normal(700, dtype=np.float32)
    out = {}
    for precision in ("fp32", "bf16"):
        kern = ChunkedKernel(w, b, torch.device("cpu"), class_chunk=100, query_chunk=512, threads=1,
                             precision=precision)
        out[precision] = kern.run(q, 3)
    np.testing.assert_array_equal(out["bf16"].indices, out["fp32"].indices)
    np.testing.assert_array_equal(out["bf16"].values, out["fp32"].values)
    exact = q.astype(np.float64) @ w.astype(np.float64).T + b
    np.testing.assert_array_equal(out["bf16"].indices[:, 0], exact.argmax(1))


def test_exact_logits_correctly_rounded() -> None:
    rng = np.random.default_rng(4)
    q = rng.standard_normal((200, 8), dtype=np.float32)
    w = rng.standard_normal((200, 8), dtype=np.float32)
    w[:20] = -q[:20]  # exact cancellation to −‖q‖² + b: the float64 interval is wide, rationals decide
    b = rng.standard_normal(200, dtype=np.float32)
    b[:20] = np.einsum("nd,nd->n", q[:20].astype(np.float64), q[:20].astype(np.float64)).astype(np.float32)
    got = exact_logits(q, w, b)
    for j in range(200):
        total = sum((Fraction(float(x)) * Fraction(float(y)) for x, y in zip(q[j], w[j], strict=True)),
                    Fraction(float(b[j])))
        near = np.float32(float(total))
        for other in (np.nextafter(near, np.float32(-np.inf)), np.nextafter(near, np.float32(np.inf))):
            assert abs(Fraction(float(got[j])) - total) <= abs(Fraction(float(other)) - total)


def test_bf16_bound_holds() -> None:
    rng = np.random.default_rng(5)
    q = rng.standard_normal((300, 64), dtype=np.float32) * 3
    w = rng.standard_normal((500, 64), dtype=np.float32)
    b = rng.standard_normal(500, dtype=np.float32) * 10
    approx = (torch.from_numpy(q).bfloat16() @ torch.from_numpy(w).bfloat16().T).float() + torch.from_numpy(b)
    exact = (q.astype(np.float64) @ w.astype(np.float64).T + b).astype(np.float32)
    slack = query_slack(q, float(np.linalg.norm(w, axis=1).max()), float(np.abs(w).max()),
                        float(np.abs(b).max()), search_bound("bf16", 64))
    err = np.abs(approx.numpy().astype(np.float64) - exact)
    assert (err <= slack[:, None]).all()
    assert err.max() > 0.05 * slack.max()  # the bound is not vacuous by orders of magnitude


def test_pick_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    assert pick_precision(32) in ("fp32", "bf16")
    monkeypatch.setenv("ZSL_SCALE_SCORE_PRECISION", "fp32")
    assert pick_precision(32) == "fp32"
    with pytest.raises(ValueError):
        ChunkedKernel(np.ones((2, 2), np.float32), None, torch.device("cpu"), precision="fp8")
