"""Top-1 scoring throughput over 21,841 classes × 128-d: our chunked CPU scorer vs faiss IndexFlatIP (k=1).

Queries are generated batch by batch (seeded) and streamed through the scorer exactly as the score
stage streams parquet shards; only the scoring calls are timed. For each size two subprocesses run:

- ``both``: ours and faiss on the same batches, alternating which goes first, so that a machine whose
  load drifts (shared CI runners) affects both equally — this gives the queries/s and the ratio;
- ``ours``: our scorer alone, for its peak RSS (faiss's buffers would contaminate it otherwise).

The last line is ``ratio: <our queries/s ÷ faiss IndexFlatIP k=1 queries/s at the largest size>``.

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
import time

import numpy as np

CLASSES, DIM, BATCH = 21_841, 128, 65_536


def _batches(n: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    done = 0
    while done < n:
        m = min(BATCH, n - done)
        yield rng.standard_normal((m, DIM), dtype=np.float32)
        done += m


def _scorers(threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    weight = np.random.default_rng(0).standard_normal((CLASSES, DIM), dtype=np.float32)
    import faiss

    from zsl_scale.scoring.score import Scorer, prototype_table

    faiss.omp_set_num_threads(threads)
    index = faiss.IndexFlatIP(DIM)
    index.add(weight)
    scorer = Scorer(prototype_table([str(i) for i in range(CLASSES)], weight), k=1, device="cpu", threads=threads)
    return {"ours": lambda q: scorer.score(q).indices[:, 0], "faiss": lambda q: index.search(q, 1)[1][:, 0]}


def worker(mode: str, n: int, threads: int) -> dict:
    """Score ``n`` synthetic queries: ``both`` backends interleaved (timing), or ``ours`` alone (RSS)."""
    fns = _scorers(threads)
    names = ["ours", "faiss"] if mode == "both" else ["ours"]
    if mode == "ours":
        del fns["faiss"]
    seconds = dict.fromkeys(names, 0.0)
    agree, first_batch = None, True
    for i, q in enumerate(_batches(n)):
        preds = {}
        for name in names if i % 2 == 0 else names[::-1]:
            t0 = time.perf_counter()
            preds[name] = fns[name](q)
            seconds[name] += time.perf_counter() - t0
        if first_batch and len(preds) == 2:
            agree = float(np.mean(preds["ours"] == preds["faiss"]))
        first_batch = False
        del q, preds  # keep one batch alive at a time: RSS must not grow with the stream length
    return {"seconds": seconds, "agree": agree,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_child(mode: str, n: int, threads: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", mode, "--n", str(n), "--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"worker failed: {' '.join(cmd)}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--worker", choices=["both", "ours"])
    ap.add_argument("--n", type=int)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.n, args.threads)))
        return

    flops = {n: 2.0 * n * CLASSES * DIM for n in args.sizes}
    timing = {n: run_child("both", n, args.threads) for n in args.sizes}
    alone = {n: run_child("ours", n, args.threads) for n in args.sizes}
    print(f"# {CLASSES} classes x {DIM}-d, top-1, {args.threads} threads, batches of {BATCH}")
    print(f"{'backend':16s} {'queries':>9s} {'seconds':>9s} {'queries/s':>10s} {'GFLOP/s':>8s} {'peakRSS MiB':>12s}")
    for n in args.sizes:
        for name in ("ours", "faiss"):
            sec = timing[n]["seconds"][name]
            label = "ours (chunked)" if name == "ours" else "faiss FlatIP k=1"
            print(f"{label:16s} {n:9d} {sec:9.2f} {n / sec:10.0f} {flops[n] / sec / 1e9:8.1f} {'':>12s}")
        sec = alone[n]["seconds"]["ours"]
        print(f"{'ours, alone':16s} {n:9d} {sec:9.2f} {n / sec:10.0f} {flops[n] / sec / 1e9:8.1f} "
              f"{alone[n]['peak_rss_mib']:12.0f}")
        print(f"{'':16s} {n:9d} top-1 agreement with faiss on the first batch: {timing[n]['agree']:.5f}")
    lo, hi = min(args.sizes), max(args.sizes)
    if lo != hi:
        print(f"our peak RSS {hi} / {lo} queries: {alone[hi]['peak_rss_mib'] / alone[lo]['peak_rss_mib']:.3f}")
    ratios = {n: timing[n]["seconds"]["faiss"] / timing[n]["seconds"]["ours"] for n in args.sizes}
    for n in args.sizes:
        print(f"speed-up vs faiss at {n} (interleaved batches): {ratios[n]:.3f}")
    print(f"ratio: {ratios[hi]:.3f}")


if __name__ == "__main__":
    main()
