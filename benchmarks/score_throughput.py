"""Top-1 scoring throughput over 21,841 classes × 128-d: our chunked CPU scorer vs faiss IndexFlatIP (k=1).

Each (backend, size) runs in its own subprocess so that peak RSS numbers do not contaminate each
other; queries are generated batch by batch (seeded) and streamed through the scorer exactly as the
score stage streams parquet shards, and only the scoring calls are timed. The last line is
``ratio: <our queries/s ÷ faiss queries/s at the largest size>``.

    python benchmarks/score_throughput.py                 # 100K and 1M queries (several minutes)
    python benchmarks/score_throughput.py --sizes 20000   # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CLASSES, DIM, BATCH = 21_841, 128, 65_536


def _batches(n: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    done = 0
    while done < n:
        m = min(BATCH, n - done)
        yield rng.standard_normal((m, DIM), dtype=np.float32)
        done += m


def worker(backend: str, n: int, threads: int, pred_out: str) -> dict:
    """Score ``n`` synthetic queries with one backend; returns seconds and peak RSS."""
    import torch

    torch.set_num_threads(threads)
    weight = np.random.default_rng(0).standard_normal((CLASSES, DIM), dtype=np.float32)
    if backend == "faiss":
        import faiss

        faiss.omp_set_num_threads(threads)
        index = faiss.IndexFlatIP(DIM)
        index.add(weight)

        def score(q: np.ndarray) -> np.ndarray:
            return index.search(q, 1)[1][:, 0]
    else:
        from zsl_scale.score import Scorer, prototype_table

        scorer = Scorer(prototype_table([str(i) for i in range(CLASSES)], weight), k=1, device="cpu",
                        threads=threads)

        def score(q: np.ndarray) -> np.ndarray:
            return scorer.score(q).indices[:, 0]

    seconds, first = 0.0, None
    for q in _batches(n):
        t0 = time.perf_counter()
        pred = score(q)
        seconds += time.perf_counter() - t0
        if first is None:
            first = pred.copy()
        del q, pred  # keep one batch alive at a time: RSS must not grow with the stream length
    np.save(pred_out, first)
    return {"seconds": seconds, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_child(backend: str, n: int, threads: int, pred_out: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", backend, "--n", str(n), "--threads", str(threads),
           "--pred-out", pred_out]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"worker failed: {' '.join(cmd)}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--worker", choices=["ours", "faiss"])
    ap.add_argument("--n", type=int)
    ap.add_argument("--pred-out")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.n, args.threads, args.pred_out)))
        return

    rows, qps = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            preds = {}
            for backend in ("ours", "faiss"):
                out = str(Path(tmp) / f"{backend}-{n}.npy")
                res = run_child(backend, n, args.threads, out)
                preds[backend] = np.load(out)
                qps[(backend, n)] = n / res["seconds"]
                gflops = 2.0 * n * CLASSES * DIM / res["seconds"] / 1e9
                rows.append((backend, n, res["seconds"], qps[(backend, n)], gflops, res["peak_rss_mib"]))
            agree = float(np.mean(preds["ours"] == preds["faiss"]))
            rows.append(("agree", n, agree, None, None, None))

    print(f"# {CLASSES} classes x {DIM}-d, top-1, {args.threads} threads, batches of {BATCH}")
    print(f"{'backend':8s} {'queries':>9s} {'seconds':>9s} {'queries/s':>10s} {'GFLOP/s':>8s} {'peakRSS MiB':>12s}")
    for name, n, sec, q, g, rss in rows:
        if name == "agree":
            print(f"{'':8s} {n:9d} top-1 agreement with faiss on the first batch: {sec:.5f}")
            continue
        print(f"{name:8s} {n:9d} {sec:9.2f} {q:10.0f} {g:8.1f} {rss:12.0f}")
    rss = {(r[0], r[1]): r[5] for r in rows if r[0] == "ours"}
    if len(args.sizes) > 1:
        lo, hi = min(args.sizes), max(args.sizes)
        print(f"our peak RSS {hi} / {lo} queries: {rss[('ours', hi)] / rss[('ours', lo)]:.3f}")
    for n in args.sizes:
        print(f"speed-up vs faiss at {n}: {qps[('ours', n)] / qps[('faiss', n)]:.3f}")
    n = max(args.sizes)
    print(f"ratio: {qps[('ours', n)] / qps[('faiss', n)]:.3f}")


if __name__ == "__main__":
    main()
