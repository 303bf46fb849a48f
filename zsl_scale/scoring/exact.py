"""Exact top-k from an approximate search: rigorous rounding bounds, candidate sets, exact re-scoring.

Why: a bf16 matmul is 2-3× faster than fp32 on CPUs with AVX512-BF16/AMX, but its logits are off by up
to ~1 % of ‖q‖‖w‖, so its top-1 is not fp32's. Instead of trusting it, the kernel uses it only to find
*candidates*: every class whose approximate logit lies within twice a proven error bound of the
approximate k-th best. No class outside that set can reach the top-k (proof in
:func:`search_bound`), so re-scoring the candidates exactly gives exactly the top-k of exact scoring.

What "exact" means here (the reference both kernels reproduce bit for bit): a logit is the **correctly
rounded float32 of the exact real value** ``q·w + b``, classes rank by that value descending, ties go to
the lowest class index. A float32 sgemm does not give that value — its rounding depends on the
library's summation order, which differs between block shapes and code paths — so the fp32 kernel
uses the same candidate + exact re-score scheme with a much smaller bound. Both kernels therefore
return identical indices *and* values by construction, not by luck of rounding.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import torch

U32 = 2.0**-24  # unit roundoff of float32
U16 = 2.0**-8  # unit roundoff of bfloat16 (8 significand bits)
U64 = 2.0**-53


def _gamma(n: int, u: float) -> float:
    """Higham's γ_n = n·u / (1 − n·u): bound on the relative error of any n-term summation order."""
    return n * u / (1.0 - n * u)


def search_bound(precision: str, dim: int) -> tuple[float, float]:
    """Coefficients ``(c_dot, c_bias)`` with ``|approx_c − exact32_c| ≤ c_dot·‖q‖‖w_c‖ + c_bias·|b_c|``.

    ``exact32_c`` is the correctly rounded float32 of the exact logit ``s_c``. With ``A = Σ|q_i w_ci|
    ≤ ‖q‖‖w_c‖`` (Cauchy-Schwarz) and unit roundoffs ``u`` (bf16) and ``v`` (fp32):

    - ``bf16``: inputs rounded to bf16 (``(2u+u²)A``), products summed in fp32 in any order
      (``γ_D(1+u)²A``), the sum rounded to bf16 (``u(1+u)²(1+γ_D)A``), the bias added in fp32
      (``v((1+u)³(1+γ_D)A + |b|)``), and the reference's own rounding (``v(A + |b|)``);
    - ``fp32``: an sgemm of D products plus the bias in any order (``γ_{D+1}(A + |b|)``) and the
      reference's rounding (``v(A + |b|)``). If torch may use reduced precision for fp32 matmuls
      (``torch.set_float32_matmul_precision`` not ``highest``), the bf16 bound is used instead.

    A class ``c`` outside ``{c : approx_c ≥ approx_(k) − 2E}`` (``E`` the bound's maximum over classes)
    has ``exact_c ≤ approx_c + E < approx_(k) − E ≤ exact_t`` for each of the k approximate leaders t,
    so k classes beat it strictly and it cannot be in the top-k, ties included.
    The coefficients are inflated by 2⁻¹⁰ to cover the rounding of the bound's own arithmetic.
    """
    u, v = U16, U32
    if precision == "fp32" and torch.get_float32_matmul_precision() == "highest":
        g = _gamma(dim + 1, v)
        c_dot = c_bias = g + v
    elif precision in ("fp32", "bf16"):
        g = _gamma(dim, v)
        c_dot = (2 * u + u * u) + g * (1 + u) ** 2 + u * (1 + u) ** 2 * (1 + g) + v * (1 + u) ** 3 * (1 + g) + v
        c_bias = 2 * v
    else:
        raise ValueError(f"unknown search precision {precision!r}")
    return c_dot * (1 + 2.0**-10), c_bias * (1 + 2.0**-10)


def query_slack(queries: np.ndarray, w_norm_max: float, w_abs_max: float, b_abs_max: float,
                coef: tuple[float, float]) -> np.ndarray:
    """Per-query bound ``E`` (float64) for the queries ``[n, D]`` against a whole class table.

    Adds an absolute term for flushed subnormals (oneDNN's bf16 dot products flush denormal inputs and
    outputs to zero): at most ``2⁻¹²⁶`` per input, product and sum, far below any realistic logit gap.
    """
    q = queries.astype(np.float64)
    q_norm = np.sqrt(np.einsum("nd,nd->n", q, q)) * (1 + 2.0**-40)
    tiny = 2.0**-120 * (q.shape[1] + 3) * (1.0 + np.abs(q).max(axis=1, initial=0.0) + w_abs_max)
    return coef[0] * q_norm * w_norm_max + coef[1] * b_abs_max + tiny


def lower32(x: np.ndarray) -> np.ndarray:
    """The largest float32 ≤ each float64 in ``x`` (so ``v ≥ lower32(t)`` holds whenever ``v ≥ t``)."""
    y = x.astype(np.float32)
    return np.where(y.astype(np.float64) > x, np.nextafter(y, np.float32(-np.inf)), y)


def threshold(kth: np.ndarray, slack: np.ndarray) -> np.ndarray:
    """``lower32(kth − 2·slack)`` with the float64 subtraction rounded towards −∞."""
    return lower32(np.nextafter(kth.astype(np.float64) - 2.0 * slack, -np.inf))


def exact_logits(q: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """Correctly rounded float32 of the exact ``Σ q_i w_i + b`` for paired rows ``q[j]``, ``w[j]``.

    float32 × float32 products are exact in float64 (48 ≤ 53 significand bits); their float64 sum
    is within ``γ_{D+1}·Σ|terms|`` of the exact value. When that whole interval rounds to one float32
    (all but ~1e-6 of real-valued logits), that float32 is the answer; the rest are summed exactly in
    rationals. The result depends only on the numbers, never on an order of operations.
    """
    terms = q.astype(np.float64) * w.astype(np.float64)
    s = terms.sum(axis=1)
    mag = np.abs(terms).sum(axis=1)
    if b is not None:
        s = s + b.astype(np.float64)
        mag = mag + np.abs(b.astype(np.float64))
    err = _gamma(q.shape[1] + 2, U64) * mag * (1 + 2.0**-20)
    lo = np.nextafter(s - err, -np.inf).astype(np.float32)
    hi = np.nextafter(s + err, np.inf).astype(np.float32)
    out = lo.copy()
    for j in np.flatnonzero(lo != hi):
        out[j] = _exact_f32(q[j], w[j], None if b is None else b[j])
    return out


def _exact_f32(q: np.ndarray, w: np.ndarray, b: np.floating | None) -> np.float32:
    """Rational-arithmetic dot product, correctly rounded to float32 (ties to even)."""
    total = Fraction(float(b)) if b is not None else Fraction(0)
    for x, y in zip(q.tolist(), w.tolist(), strict=True):
        total += Fraction(x) * Fraction(y)
    near = np.float32(float(total))  # within one float32 step of the correct rounding
    cands = [np.nextafter(near, np.float32(-np.inf)), near, np.nextafter(near, np.float32(np.inf))]
    cands = [c for c in cands if np.isfinite(c)]
    return min(cands, key=lambda c: (abs(Fraction(float(c)) - total), int(np.float32(c).view(np.uint32)) & 1))


class Candidates:
    """Collects, per query row, every (class, approximate logit) that may still reach the top-k.

    Blocks arrive class chunk by class chunk; ``kth`` is a running lower bound of each row's k-th best
    approximate logit (the best of the per-block k-th values), so an entry skipped when its block
    arrived is below the final threshold too.
    """

    def __init__(self, n: int, k: int, slack: np.ndarray) -> None:
        self.k, self.slack = k, slack
        self.kth = np.full(n, -np.inf, np.float32)
        self.rows: list[np.ndarray] = []
        self.cols: list[np.ndarray] = []
        self.vals: list[np.ndarray] = []

    def add(self, block: np.ndarray, offset: int, block_kth: np.ndarray, block_max: np.ndarray) -> None:
        """Take one ``[n, cols]`` float32 block of approximate logits whose first column is ``offset``."""
        np.maximum(self.kth, block_kth, out=self.kth)
        thr = threshold(self.kth, self.slack)
        rows = np.flatnonzero(block_max >= thr)
        if rows.size == 0:
            return
        sub = block[rows]
        flat = np.flatnonzero(sub >= thr[rows, None])  # 1-D nonzero: ~10× faster than the 2-D one
        r, c = np.divmod(flat, sub.shape[1])
        self.rows.append(rows[r])
        self.cols.append(c + offset)
        self.vals.append(sub.reshape(-1)[flat])

    def finish(self, q: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k ``(values [n, k] float32, indices [n, k] int64)`` of the rows ``q`` ``[n, D]``."""
        n, k = q.shape[0], self.k
        rows, cols, vals = np.concatenate(self.rows), np.concatenate(self.cols), np.concatenate(self.vals)
        order = np.lexsort((-vals, rows))
        rows, cols, vals = rows[order], cols[order], vals[order]
        starts = np.searchsorted(rows, np.arange(n))
        kth = vals[starts + k - 1]  # every row holds at least its k approximate leaders
        keep = vals >= threshold(kth, self.slack)[rows]
        rows, cols = rows[keep], cols[keep]
        exact = exact_logits(q[rows], weight[cols], None if bias is None else bias[cols])
        order = np.lexsort((cols, -exact, rows))
        rows, cols, exact = rows[order], cols[order], exact[order]
        pick = (np.searchsorted(rows, np.arange(n))[:, None] + np.arange(k)).reshape(-1)
        return exact[pick].reshape(n, k), cols[pick].astype(np.int64).reshape(n, k)
