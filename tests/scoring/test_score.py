"""Chunked scoring equals dense scoring exactly (ties included); streaming LSE; per-class metrics."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

from zsl_scale.core.errors import ConfigError, DataError
from zsl_scale.core.io import atomic_write_parquet
from zsl_scale.scoring.kernels import BlockResult, faiss_topk
from zsl_scale.scoring.score import (
    Accumulator,
    Scorer,
    calibrated_stacking,
    gzsl_metrics,
    gzsl_search_space,
    iter_parquet_batches,
    linear_table,
    prototype_table,
    score_stream,
)


def dense_topk(q: np.ndarray, w: np.ndarray, b: np.ndarray | None, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference: full logit matrix, stable sort (value descending, lowest index first on ties)."""
    logits = torch.from_numpy(q) @ torch.from_numpy(w).T
    if b is not None:
        logits = logits + torch.from_numpy(b)
    order = torch.argsort(logits, dim=1, descending=True, stable=True)[:, :k]
    return logits.gather(1, order).numpy(), order.numpy()


def int_data(seed: int, n: int, c: int, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Small-integer float32 data: every logit is exact in any summation order, and ties are common."""
    rng = np.random.default_rng(seed)
    return (rng.integers(-2, 3, (n, d)).astype(np.float32), rng.integers(-2, 3, (c, d)).astype(np.float32),
            rng.integers(-1, 2, c).astype(np.float32))


@pytest.mark.parametrize("k", [1, 5])
@pytest.mark.parametrize("threads", [1, 2])
def test_chunked_equals_dense_with_ties(k: int, threads: int) -> None:
    q, w, b = int_data(0, 300, 257, 6)
    ids = [f"c{i:03d}" for i in range(257)]
    ref_v, ref_i = dense_topk(q, w, b, k)
    # the data really has ties at the top (otherwise this test would not test the rule)
    full = q @ w.T + b
    assert ((full == full.max(1, keepdims=True)).sum(1) > 1).mean() > 0.3
    scorer = Scorer(linear_table(ids, w, b), k=k, device="cpu", class_chunk=64, query_chunk=37, threads=threads)
    res = scorer.score(q)
    scorer.close()
    np.testing.assert_array_equal(res.indices, ref_i)
    np.testing.assert_array_equal(res.values, ref_v)


def test_chunked_equals_dense_random_floats() -> None:
    rng = np.random.default_rng(1)
    q = rng.standard_normal((500, 32), dtype=np.float32)
    w = rng.standard_normal((1000, 32), dtype=np.float32)
    _, ref_i = dense_topk(q, w, None, 3)
    res = Scorer(prototype_table([str(i) for i in range(1000)], w), k=3, device="cpu",
                 class_chunk=128, query_chunk=100).score(q)
    np.testing.assert_array_equal(res.indices, ref_i)


def test_faiss_backend_agrees_without_ties() -> None:
    rng = np.random.default_rng(2)
    q = rng.standard_normal((200, 16), dtype=np.float32)
    w = rng.standard_normal((300, 16), dtype=np.float32)
    b = rng.standard_normal(300, dtype=np.float32)
    _, ref_i = dense_topk(q, w, b, 2)
    _, idx = faiss_topk(q, w, b, k=2, use_gpu=False)
    np.testing.assert_array_equal(idx, ref_i)
    res = Scorer(linear_table([str(i) for i in range(300)], w, b), k=2, device="cpu", backend="faiss").score(q)
    np.testing.assert_array_equal(res.indices, ref_i)


def test_faiss_scorer_builds_its_index_once_and_no_chunked_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    import faiss

    from zsl_scale.scoring import score as score_module

    built: list[int] = []
    real = faiss.IndexFlatIP

    def counting(dim: int):  # the index class, counting constructions
        built.append(dim)
        return real(dim)

    def no_kernel(*args, **kwargs):  # its start-up bf16/fp32 timing is wasted work on the faiss path
        raise AssertionError("the faiss backend built a chunked kernel")

    monkeypatch.setattr(faiss, "IndexFlatIP", counting)
    monkeypatch.setattr(score_module, "ChunkedKernel", no_kernel)
    rng = np.random.default_rng(3)
    q = rng.standard_normal((90, 16), dtype=np.float32)
    w, b = rng.standard_normal((50, 16), dtype=np.float32), rng.standard_normal(50, dtype=np.float32)
    _, ref_i = dense_topk(q, w, b, 1)
    with Scorer(linear_table([str(i) for i in range(50)], w, b), device="cpu", backend="faiss") as scorer:
        got = np.concatenate([scorer.score(q[lo:lo + 30]).indices for lo in range(0, 90, 30)])
    np.testing.assert_array_equal(got, ref_i)
    assert built == [17]  # one index for three batches; the bias is its 17th coordinate


def test_scorer_context_manager_stops_the_workers() -> None:
    rng = np.random.default_rng(4)
    q, w = rng.standard_normal((64, 8), dtype=np.float32), rng.standard_normal((40, 8), dtype=np.float32)
    with Scorer(prototype_table([str(i) for i in range(40)], w), device="cpu", threads=2, query_chunk=16,
                precision="fp32") as scorer:
        scorer.score(q)
        assert scorer.kernel is not None and scorer.kernel._pool is not None
    assert scorer.kernel._pool is None


def test_streaming_lse_matches_torch() -> None:
    rng = np.random.default_rng(3)
    q = 4 * rng.standard_normal((120, 8), dtype=np.float32)
    w = rng.standard_normal((500, 8), dtype=np.float32)
    b = rng.standard_normal(500, dtype=np.float32)
    labels = rng.integers(0, 500, 120)
    res = Scorer(linear_table([str(i) for i in range(500)], w, b), device="cpu", lse=True,
                 class_chunk=64, query_chunk=50).score(q, labels)
    logits = torch.from_numpy(q).double() @ torch.from_numpy(w).double().T + torch.from_numpy(b).double()
    np.testing.assert_allclose(res.lse, torch.logsumexp(logits, 1).numpy(), rtol=1e-5, atol=1e-5)
    prob_top1 = np.exp(res.values[:, 0] - res.lse)
    np.testing.assert_allclose(prob_top1, torch.softmax(logits, 1).max(1).values.numpy(), rtol=1e-4)
    nll = res.lse - res.true_logit
    ref = torch.nn.functional.cross_entropy(logits, torch.from_numpy(labels), reduction="none").numpy()
    np.testing.assert_allclose(nll, ref, rtol=1e-4, atol=1e-4)


def test_per_class_metrics_hand_made() -> None:
    # classes a, b (seen) and x (unseen); 2-d prototypes on the axes make predictions obvious
    table = prototype_table(["a", "b", "x"], np.array([[1, 0], [0, 1], [-1, 0]], np.float32))
    queries = np.array([[2, 0], [0, 3], [0, 1], [-1, 0], [1, 0], [-5, 1]], np.float32)
    labels = np.array([0, 0, 1, 2, 2, 2])  # a: 1/2 right, b: 1/1, x: 2/3 right
    acc = score_stream(Scorer(table, k=2, device="cpu"), [(queries, labels)], ks=(1, 2))
    np.testing.assert_array_equal(acc.hits[1], [1, 1, 2])
    np.testing.assert_array_equal(acc.totals, [2, 1, 3])
    m = gzsl_metrics(acc, table, seen=["a", "b"], unseen=["x"], groups={"a": "g1", "b": "g1", "x": "g2"})
    assert m["S"] == pytest.approx(75.0) and m["U"] == pytest.approx(100 * 2 / 3, abs=1e-3)
    assert m["H"] == pytest.approx(100 * 2 * 0.75 * (2 / 3) / (0.75 + 2 / 3), abs=1e-3)
    assert m["per_class"] == pytest.approx({"a": 50.0, "b": 100.0, "x": 100 * 2 / 3})
    assert m["per_group"] == pytest.approx({"g1": 75.0, "g2": 100 * 2 / 3}, abs=1e-3)
    assert m["top_k"]["top2"] == pytest.approx(100 * 2 / 3, abs=1e-3)  # x→(a, b) for [1, 0]: still a miss


def test_search_space_and_calibrated_stacking() -> None:
    assert gzsl_search_space(["s2", "s1"], ["u2", "s1", "u1"]) == ["s1", "s2", "u1", "u2"]
    table = prototype_table(["s", "u"], np.array([[1.0], [0.9]], np.float32))
    q = np.array([[1.0]], np.float32)
    assert Scorer(table, device="cpu").score(q).indices[0, 0] == 0
    stacked = calibrated_stacking(table, ["s"], gamma=0.5)
    assert Scorer(stacked, device="cpu").score(q).indices[0, 0] == 1


def test_parquet_stream(tmp_path) -> None:
    feats = np.arange(12, dtype=np.float16).reshape(4, 3)
    tab = pa.table({"image_id": ["i0", "i1", "i2", "i3"], "wnid": ["b", "a", "b", "a"],
                    "feature": pa.FixedSizeListArray.from_arrays(pa.array(feats.ravel()), 3)})
    atomic_write_parquet(tmp_path / "s0.parquet", tab)
    batches = list(iter_parquet_batches([tmp_path / "s0.parquet"], ["a", "b"], batch_rows=3))
    assert [len(b[1]) for b in batches] == [3, 1]
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), feats.astype(np.float32))
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), [1, 0, 1, 0])
    with pytest.raises(DataError, match=r"class b .* outside the search space"):
        list(iter_parquet_batches([tmp_path / "s0.parquet"], ["a"]))


def test_bad_input() -> None:
    table = prototype_table(["a", "b"], np.eye(2, dtype=np.float32))
    with pytest.raises(DataError, match="expects dimension 2"):
        Scorer(table, device="cpu").score(np.zeros((3, 5), np.float32))
    with pytest.raises(DataError, match="class z of the split 2H has no classifier weight"):
        table.subset(["a", "z"], what="split 2H")
    with pytest.raises(DataError, match="NaN"):
        Scorer(table, device="cpu").score(np.full((1, 2), np.nan, np.float32))
    with pytest.raises(ConfigError):
        Scorer(table, backend="annoy")
    acc = Accumulator(2)
    acc.update(np.array([0]), BlockResult(np.zeros((1, 1), np.float32), np.zeros((1, 1), np.int64)))
    assert acc.mean() == 1.0
