"""Top-1 scoring throughput over 21,841 classes × 128-d: our chunked CPU scorer vs faiss IndexFlatIP (k=1).

Our scorer has two kernels with identical results (low-precision candidate search + exact re-score,
docs/scoring.md): ``bf16`` search and ``fp32`` search. Queries are generated batch by batch (seeded)
and streamed through the scorers exactly as the score stage streams parquet shards; only the scoring
calls are timed. For each size two subprocesses run:

- ``both``: ours (bf16), ours (fp32) and faiss on the same batches, rotating which goes first, so that
  a machine whose load drifts (shared runners) affects all equally — this gives queries/s and ratios,
  and the agreement of the two kernels on **every** query (indices and values; must be 1.00000);
- ``ours``: our scorer alone, kernel picked at start-up as ``Scorer`` does, for its peak RSS.

The last line is ``ratio: <our queries/s (kernel picked at start-up) ÷ faiss IndexFlatIP k=1 at the largest size>``.

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
    table = prototype_table([str(i) for i in range(CLASSES)], weight)
    fns = {"faiss": lambda q: index.search(q, 1)[1][:, 0]}
    for precision in ("bf16", "fp32", "auto"):
        scorer = Scorer(table, k=1, device="cpu", threads=threads, precision=precision)
        fns[precision] = (lambda s: lambda q: s.score(q))(scorer)
        fns[f"{precision}:picked"] = scorer.kernel.precision
    return fns


def worker(mode: str, n: int, threads: int) -> dict:
    """Score ``n`` synthetic queries: both kernels and faiss interleaved (timing), or ``ours`` alone (RSS)."""
    fns = _scorers(threads)
    picked = fns["auto:picked"]
    names = ["bf16", "fp32", "faiss"] if mode == "both" else ["auto"]
    seconds = dict.fromkeys(names, 0.0)
    same = agree_faiss = 0
    for i, q in enumerate(_batches(n)):
        preds = {}
        for name in names[i % len(names):] + names[:i % len(names)]:
            t0 = time.perf_counter()
            preds[name] = fns[name](q)
            seconds[name] += time.perf_counter() - t0
        if mode == "both":
            b, f = preds["bf16"], preds["fp32"]
            same += int(np.sum((b.indices == f.indices).all(1) & (b.values == f.values).all(1)))
            agree_faiss += int(np.sum(f.indices[:, 0] == preds["faiss"]))
        del q, preds  # keep one batch alive at a time: RSS must not grow with the stream length
    return {"seconds": seconds, "same": same / n, "agree_faiss": agree_faiss / n, "picked": picked,
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
    print(f"# {CLASSES} classes x {DIM}-d, top-1, {args.threads} threads, batches of {BATCH}; "
          f"kernel picked at start-up: {alone[max(args.sizes)]['picked']}")
    print(f"{'backend':18s} {'queries':>9s} {'seconds':>9s} {'queries/s':>10s} {'GFLOP/s':>8s} {'peakRSS MiB':>12s}")
    labels = {"bf16": "ours bf16+exact", "fp32": "ours fp32+exact", "faiss": "faiss FlatIP k=1"}
    for n in args.sizes:
        for name, label in labels.items():
            sec = timing[n]["seconds"][name]
            print(f"{label:18s} {n:9d} {sec:9.2f} {n / sec:10.0f} {flops[n] / sec / 1e9:8.1f} {'':>12s}")
        sec = alone[n]["seconds"]["auto"]
        print(f"{'ours alone (auto)':18s} {n:9d} {sec:9.2f} {n / sec:10.0f} {flops[n] / sec / 1e9:8.1f} "
              f"{alone[n]['peak_rss_mib']:12.0f}")
        print(f"{'':18s} {n:9d} bf16 == fp32 (index and value) on all queries: {timing[n]['same']:.5f}; "
              f"top-1 agreement with faiss: {timing[n]['agree_faiss']:.5f}")
    lo, hi = min(args.sizes), max(args.sizes)
    if lo != hi:
        print(f"our peak RSS {hi} / {lo} queries: {alone[hi]['peak_rss_mib'] / alone[lo]['peak_rss_mib']:.3f}")
    for n in args.sizes:
        t = timing[n]["seconds"]
        print(f"at {n}: bf16 / fp32 kernel {t['fp32'] / t['bf16']:.3f}; vs faiss: bf16 {t['faiss'] / t['bf16']:.3f}, "
              f"fp32 {t['faiss'] / t['fp32']:.3f} (interleaved batches)")
    t = timing[hi]["seconds"]
    print(f"ratio: {t['faiss'] / t[alone[hi]['picked']]:.3f}")


if __name__ == "__main__":
    main()
