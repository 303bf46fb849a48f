"""Chunked top-k / log-sum-exp kernels over very large class sets (the inner loop of the score stage).

The full logit matrix of an ImageNet "All" evaluation (12.9M images × 21.8K classes) would take ~1 TB,
so logits only ever exist as one ``query_chunk × class_chunk`` block per worker. On CPU each worker
thread runs a single-threaded MKL sgemm into a reused block and reduces it with numpy's SIMD
``argmax`` (≈0.13 ns per logit here, against ≈2 ns for ``torch.max(dim=1)``, which measured
argmax-bound in docs/design.md §6); one worker per core keeps both the sgemm and the reduction parallel.

Ranking rule (identical to dense scoring, and relied on by the tests): classes are ordered by logit
descending, ties broken by the **lowest class index**. ``numpy.argmax``/``torch.max`` return the first
maximum within a block, and a later class chunk replaces the running best only when strictly greater.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
import torch

from zsl_scale.scoring.exact import Candidates, query_slack, search_bound


@dataclass
class BlockResult:
    """Scores of one batch of queries: top-k (value desc, index asc) and optional LSE / true logit."""

    values: np.ndarray  # [n, k] float32
    indices: np.ndarray  # [n, k] int64
    lse: np.ndarray | None = None  # [n] float32, log Σ_c exp(logit_c)
    true_logit: np.ndarray | None = None  # [n] float32, logit of the label (when labels were given)


def _sort_candidates(vals: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Order candidate (value, index) pairs by value descending, index ascending (exact, stable)."""
    order = torch.argsort(idx, dim=1, stable=True)
    vals, idx = vals.gather(1, order), idx.gather(1, order)
    order = torch.argsort(vals, dim=1, descending=True, stable=True)
    return vals.gather(1, order), idx.gather(1, order)


def _block_topk(block: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-k of each row of ``block`` under the ranking rule (ties → lowest column index).

    ``torch.topk`` does not promise which of several tied values it keeps at the k-th place, so rows
    whose k-th value occurs more often in the row than among the picks are redone with a stable sort.
    Rows without such a boundary tie (all of them, on real-valued data) take the fast path.
    """
    k = min(k, block.shape[1])
    vals, idx = torch.topk(block, k, dim=1, sorted=True)
    thr = vals[:, -1:]
    boundary = (block == thr).sum(1) > (vals == thr).sum(1)
    if bool(boundary.any()):
        rows = boundary.nonzero().squeeze(1)
        order = torch.argsort(block[rows], dim=1, descending=True, stable=True)[:, :k]
        idx[rows] = order
        vals[rows] = block[rows].gather(1, order)
    return _sort_candidates(vals, idx)


class ChunkedKernel:
    """Top-k over ``weight``/``bias`` for query batches, never materialising more than one block.

    Args:
        weight: ``[C, D]`` float32 class matrix (rows in tie-break order).
        bias: ``[C]`` or None; logits are ``q · weightᵀ + bias``.
        device: where the sgemm runs; CPU uses ``threads`` worker threads with one BLAS thread each.
        class_chunk / query_chunk: block shape; the defaults keep a CPU block (4 MB) in L2/L3 while
            giving MKL a large enough M for an efficient sgemm (measured, see docs/scoring.md).
        threads: CPU workers (default: usable cores).
        precision: CPU candidate search in ``fp32`` or ``bf16``, or ``auto`` (bf16 where a start-up check
            finds it correct and faster, see :func:`pick_precision`). Both give identical results:
            every candidate is re-scored exactly (:mod:`zsl_scale.scoring.exact`). With ``lse`` the
            search runs in fp32, since the log-sum-exp needs every fp32 logit anyway.
    """

    def __init__(
        self,
        weight: np.ndarray,
        bias: np.ndarray | None,
        device: torch.device,
        class_chunk: int | None = None,
        query_chunk: int | None = None,
        threads: int | None = None,
        precision: str = "auto",
    ) -> None:
        if precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"unknown scoring precision {precision!r}; use auto, fp32 or bf16")
        self.device = device
        self.cpu = device.type == "cpu"
        self.weight = torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32)).to(device)
        self.bias = None if bias is None else torch.from_numpy(np.asarray(bias, np.float32)).to(device)
        self.class_chunk = class_chunk or (1024 if self.cpu else 8192)
        self.query_chunk = query_chunk or (1024 if self.cpu else 8192)
        self.threads = max(1, threads or _usable_cores()) if self.cpu else 1
        self._local = threading.local()
        self._pool = None
        if not self.cpu:
            precision = "fp32"
        elif precision == "auto":
            precision = pick_precision(self.weight.shape[1])
        self.precision = precision
        self._w_bf16 = self.weight.to(torch.bfloat16) if precision == "bf16" else None
        w64 = self.weight.double()
        self._w_norm_max = float(w64.norm(dim=1).max()) * (1 + 2.0**-40) if self.n_classes else 0.0
        self._w_abs_max = float(w64.abs().max()) if self.n_classes else 0.0
        self._b_abs_max = 0.0 if self.bias is None else float(self.bias.double().abs().max())

    @property
    def n_classes(self) -> int:
        return int(self.weight.shape[0])

    def close(self) -> None:
        """Stop the CPU worker threads."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _buffer(self, rows: int, cols: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """A contiguous ``rows × cols`` view of this worker's reused block (no allocation per block)."""
        name = f"buf_{dtype}"
        buf = getattr(self._local, name, None)
        if buf is None or buf.numel() < rows * cols:
            buf = torch.empty(self.query_chunk * self.class_chunk, device=self.device, dtype=dtype)
            setattr(self._local, name, buf)
        return buf[: rows * cols].view(rows, cols)

    def run(self, queries: np.ndarray, k: int = 1, labels: np.ndarray | None = None, lse: bool = False
            ) -> BlockResult:
        """Score a batch: ``queries`` ``[n, D]`` float32, ``labels`` class indices (for the true logit)."""
        n = queries.shape[0]
        k = min(k, self.n_classes)
        out = BlockResult(np.empty((n, k), np.float32), np.empty((n, k), np.int64))
        if lse:
            out.lse = np.empty(n, np.float32)
            if labels is not None:
                out.true_logit = np.empty(n, np.float32)
        spans = [(lo, min(lo + self.query_chunk, n)) for lo in range(0, n, self.query_chunk)]
        if self.threads == 1 or len(spans) == 1:
            for lo, hi in spans:
                self._run_span(queries, labels, out, lo, hi, k, lse)
            return out
        from concurrent.futures import ThreadPoolExecutor

        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="zsl-score")
        prev = torch.get_num_threads()
        torch.set_num_threads(1)  # one BLAS thread per worker: the workers are the parallelism
        try:
            futures = [self._pool.submit(self._run_span, queries, labels, out, lo, hi, k, lse) for lo, hi in spans]
            for fut in futures:
                fut.result()
        finally:
            torch.set_num_threads(prev)
        return out

    def _run_span(self, queries: np.ndarray, labels: np.ndarray | None, out: BlockResult,
                  lo: int, hi: int, k: int, lse: bool) -> None:
        if self.cpu:
            self._run_span_cpu(queries, labels, out, lo, hi, k, lse)
        else:
            self._run_span_device(queries, labels, out, lo, hi, k, lse)

    def _run_span_cpu(self, queries: np.ndarray, labels: np.ndarray | None, out: BlockResult,
                      lo: int, hi: int, k: int, lse: bool) -> None:
        """CPU: approximate blocks (bf16 or fp32 sgemm) → candidate sets → exact re-score of the candidates.

        Per block the reduction is numpy's SIMD ``max`` (k = 1) or ``torch.topk`` (k > 1); only the rows
        whose block maximum reaches the running threshold are scanned for candidates, which after the
        first few class chunks is a small minority.
        """
        if self.threads > 1 and not getattr(self._local, "one_thread", False):
            # OpenMP's thread count is per calling thread: without this each worker's oneDNN bf16 gemm
            # would start its own team of `cores` threads (2 workers × 2 threads on 2 cores measured 2× slower)
            torch.set_num_threads(1)
            self._local.one_thread = True
        qn = queries[lo:hi]
        n = hi - lo
        bf16 = self.precision == "bf16" and not lse
        q = torch.from_numpy(qn)
        q_low = q.to(torch.bfloat16) if bf16 else None
        cand = Candidates(n, k, query_slack(qn, self._w_norm_max, self._w_abs_max, self._b_abs_max,
                                            search_bound("bf16" if bf16 else "fp32", qn.shape[1])))
        lab = None if labels is None else np.asarray(labels[lo:hi], np.int64)
        run_lse = torch.full((n,), -torch.inf) if lse else None
        true = np.zeros(n, np.float32) if (lse and lab is not None) else None
        for c0 in range(0, self.n_classes, self.class_chunk):
            c1 = min(c0 + self.class_chunk, self.n_classes)
            block = self._buffer(n, c1 - c0)
            if bf16:
                low = self._buffer(n, c1 - c0, torch.bfloat16)
                torch.mm(q_low, self._w_bf16[c0:c1].T, out=low)
                block.copy_(low)
                if self.bias is not None:  # copy + in-place add: 1.5× faster than a mixed-dtype add
                    block.add_(self.bias[c0:c1])
            elif self.bias is None:
                torch.mm(q, self.weight[c0:c1].T, out=block)
            else:
                torch.addmm(self.bias[c0:c1], q, self.weight[c0:c1].T, out=block)
            if run_lse is not None:
                run_lse = torch.logaddexp(run_lse, torch.logsumexp(block, dim=1))
                if true is not None:
                    rows = np.flatnonzero((lab >= c0) & (lab < c1))
                    true[rows] = block.numpy()[rows, lab[rows] - c0]
            arr = block.numpy()
            if k == 1:
                top = arr.max(axis=1)
                cand.add(arr, c0, top, top)
            else:
                vals = torch.topk(block, min(k, c1 - c0), dim=1, sorted=True).values.numpy()
                kth = vals[:, -1] if vals.shape[1] == k else np.full(n, -np.inf, np.float32)
                cand.add(arr, c0, kth, vals[:, 0])
        out.values[lo:hi], out.indices[lo:hi] = cand.finish(qn, self.weight.numpy(),
                                                            None if self.bias is None else self.bias.numpy())
        if run_lse is not None:
            out.lse[lo:hi] = run_lse.numpy()
            if true is not None:
                out.true_logit[lo:hi] = true

    def _run_span_device(self, queries: np.ndarray, labels: np.ndarray | None, out: BlockResult,
                         lo: int, hi: int, k: int, lse: bool) -> None:
        """CUDA: fp32 blocks reduced with ``torch.max``/``topk`` on the device (sgemm values, not re-scored)."""
        q = torch.from_numpy(queries[lo:hi]).to(self.device, non_blocking=True)
        lab = None if labels is None else torch.from_numpy(np.asarray(labels[lo:hi], np.int64)).to(self.device)
        n = hi - lo
        run_lse = torch.full((n,), -torch.inf, device=self.device) if lse else None
        true = torch.zeros(n, device=self.device) if (lse and lab is not None) else None
        best_v = best_i = None
        for c0 in range(0, self.n_classes, self.class_chunk):
            c1 = min(c0 + self.class_chunk, self.n_classes)
            block = self._buffer(n, c1 - c0)
            w = self.weight[c0:c1]
            if self.bias is None:
                torch.mm(q, w.T, out=block)
            else:
                torch.addmm(self.bias[c0:c1], q, w.T, out=block)
            if run_lse is not None:
                run_lse = torch.logaddexp(run_lse, torch.logsumexp(block, dim=1))
                if true is not None:
                    inside = (lab >= c0) & (lab < c1)
                    rows = inside.nonzero().squeeze(1)
                    true[rows] = block[rows, lab[rows] - c0]
            if k == 1:
                v, i = block.max(dim=1)  # first maximum on ties (documented torch behaviour)
                i = i + c0
                if best_v is None:
                    best_v, best_i = v, i
                else:
                    upd = v > best_v  # strict: an earlier chunk keeps ties
                    best_v, best_i = torch.where(upd, v, best_v), torch.where(upd, i, best_i)
            else:
                v, i = _block_topk(block, k)
                if best_v is None:
                    best_v, best_i = v, i + c0
                else:
                    # running candidates all have lower indices than this chunk's: concatenating them
                    # first and stable-sorting by value keeps the (value desc, index asc) order exact.
                    cat_v, cat_i = torch.cat([best_v, v], 1), torch.cat([best_i, i + c0], 1)
                    order = torch.argsort(cat_v, dim=1, descending=True, stable=True)[:, :k]
                    best_v, best_i = cat_v.gather(1, order), cat_i.gather(1, order)
        out.values[lo:hi] = best_v.reshape(n, -1).cpu().numpy()
        out.indices[lo:hi] = best_i.reshape(n, -1).cpu().numpy()
        if run_lse is not None:
            out.lse[lo:hi] = run_lse.cpu().numpy()
            if true is not None:
                out.true_logit[lo:hi] = true.cpu().numpy()


def pick_precision(dim: int) -> str:
    """``bf16`` if this CPU's bf16 matmul accumulates in fp32 and is ≥ 1.25× faster than fp32, else ``fp32``.

    Checked once per dimension and process, at run time (machines of the same kind differ: AVX2-only
    hosts emulate bf16 slowly, AMX hosts run it ~10× faster than fp32). Results do not depend on the
    choice, only speed does; ``ZSL_SCALE_SCORE_PRECISION=fp32|bf16`` overrides it.
    """
    import os

    forced = os.environ.get("ZSL_SCALE_SCORE_PRECISION", "")
    if forced in ("fp32", "bf16"):
        return forced
    if dim not in _PICKED:
        _PICKED[dim] = "bf16" if _bf16_accumulates_fp32() and _bf16_speedup(dim) >= 1.25 else "fp32"
    return _PICKED[dim]


_PICKED: dict[int, str] = {}


def _bf16_accumulates_fp32(dim: int = 128) -> bool:
    """Check the premise of the bf16 error bound: products accumulate in fp32, only the sum is rounded.

    On random data every entry of a bf16 matmul must be within ``γ_D·Σ|q_i w_i| + u_bf16·|s|`` of the
    float64 product of the same bf16 inputs; bf16 accumulation misses that by ~√D. A backend that
    fails (or errors) keeps the fp32 search.
    """
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(64, dim, generator=gen).bfloat16(), torch.randn(256, dim, generator=gen).bfloat16()
    try:
        got = torch.mm(a, b.T).double()
    except RuntimeError:
        return False
    a64, b64 = a.double(), b.double()
    exact = a64 @ b64.T
    mag = a64.abs() @ b64.abs().T
    bound = (dim * 2.0**-24 / (1 - dim * 2.0**-24)) * mag * (1 + 2.0**-8) + 2.0**-8 * exact.abs() * 1.01
    return bool(((got - exact).abs() <= bound).all())


def _bf16_speedup(dim: int, rows: int = 1024) -> float:
    """fp32 ÷ bf16 time of one single-threaded ``rows × rows × dim`` block (best of 3)."""
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        gen = torch.Generator().manual_seed(0)
        a, b = torch.randn(rows, dim, generator=gen), torch.randn(rows, dim, generator=gen)
        times = []
        for x, y in ((a, b), (a.bfloat16(), b.bfloat16())):
            out = torch.empty(rows, rows, dtype=x.dtype)
            torch.mm(x, y.T, out=out)
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                torch.mm(x, y.T, out=out)
                best = min(best, time.perf_counter() - t0)
            times.append(best)
    finally:
        torch.set_num_threads(prev)
    return times[0] / times[1]


def _usable_cores() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def faiss_topk(queries: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, k: int = 1,
               use_gpu: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k by maximum inner product with faiss, for one batch (see :class:`FaissIndex`)."""
    return FaissIndex(weight, bias, use_gpu).search(queries, k)


class FaissIndex:
    """A class table as a faiss index, built once and searched per batch (IndexFlatIP on CPU, ``knn_gpu``
    with one set of GPU resources when available).

    A bias is folded in exactly by augmenting each vector with one extra coordinate (q ↦ [q, 1],
    w ↦ [w, b]), so the same backend serves linear classifiers and prototypes. faiss's tie-breaking
    is its own; the ranking rule above is only guaranteed by :class:`ChunkedKernel`.
    """

    def __init__(self, weight: np.ndarray, bias: np.ndarray | None, use_gpu: bool | None = None) -> None:
        import faiss

        w = np.ascontiguousarray(weight, dtype=np.float32)
        self.with_bias = bias is not None
        if bias is not None:
            w = np.hstack([w, np.asarray(bias, np.float32)[:, None]])
        if use_gpu is None:
            use_gpu = hasattr(faiss, "knn_gpu") and faiss.get_num_gpus() > 0
        self._faiss, self._weight = faiss, w
        self._gpu = faiss.StandardGpuResources() if use_gpu else None
        self._index = None
        if not use_gpu:
            self._index = faiss.IndexFlatIP(w.shape[1])
            self._index.add(w)

    def search(self, queries: np.ndarray, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (values, class rows) of ``queries`` ``[n, D]``."""
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if self.with_bias:
            q = np.hstack([q, np.ones((q.shape[0], 1), np.float32)])
        if self._index is None:
            vals, idx = self._faiss.knn_gpu(self._gpu, q, self._weight, k, metric=self._faiss.METRIC_INNER_PRODUCT)
        else:
            vals, idx = self._index.search(q, k)
        return vals.astype(np.float32), idx.astype(np.int64)
