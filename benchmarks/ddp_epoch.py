"""CADA-VAE epoch time with 1 vs 2 DDP workers on CPU, and streaming-loader vs in-memory samples/s.

    .venv/bin/python benchmarks/ddp_epoch.py [--rows 100000] [--dim 128] [--epochs 1]

Data: synthetic feature shards in the real on-disk format (parquet, float16, 4096-row row groups).
Model: the paper's small-benchmark architecture (latent 64, one hidden layer of 1560/1660/1450/665)
on D-dimensional features, batch 128. Both runs use the same global batches (2 virtual streams), one
torch thread per worker, gloo over loopback, no Ray (its ~40 s actor start-up would swamp an epoch;
the per-epoch seconds are measured inside the training loop, as the runs' losses.csv records them).

Last line: ``ratio: <1-worker epoch seconds ÷ 2-worker epoch seconds>`` (2 is perfect scaling).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from zsl_scale.core.config import ModelSettings, TrainConfig
from zsl_scale.datasets.synthetic import write_synthetic
from zsl_scale.distributed.config import DistJobConfig
from zsl_scale.distributed.streaming import StreamPlan, iter_worker_batches, load_class_table, open_features
from zsl_scale.distributed.trainer import fit_spawn, prepare_job


def epoch_seconds(root: Path, feats: Path, emb: Path, workers: int, epochs: int) -> float:
    cfg = DistJobConfig(
        name=f"w{workers}", model=ModelSettings(imagenet=False),
        train=TrainConfig(batch_size=128, epochs=epochs),
        scale={"workers": workers, "streams": 2, "threads_per_worker": 1, "storage_path": str(root / "runs")},
    )
    job = prepare_job(cfg, open_features(feats), load_class_table(emb))
    fit_spawn(job, workers)
    lines = (root / "runs" / cfg.name / "losses.csv").read_text().splitlines()
    secs = [float(line.split(",")[-1]) for line in lines[1:]]
    return min(secs)


def loader_rates(feats: Path, emb: Path) -> tuple[float, float]:
    """Samples/s of one epoch: streaming from shards vs indexing in-memory tensors (both → float32 batches).

    The in-memory baseline holds the whole feature matrix (what the single-process trainer does); the
    streaming loader holds a few blocks. Neither includes a training step.
    """
    torch.set_num_threads(1)  # as in a training worker; also keeps OpenMP spin-waits out of a shared machine
    source, classes = open_features(feats), load_class_table(emb)
    plan = StreamPlan(source, 128, 2, 4096, seed=0, group_blocks=8)
    t0, rows = time.perf_counter(), 0
    for part in iter_worker_batches(plan, classes, 0, 0, 1):
        x = torch.from_numpy(part.features).float()
        rows += x.shape[0]
    streaming = rows / (time.perf_counter() - t0)
    import pyarrow.parquet as pq

    table = [pq.read_table(p) for p in source.files]
    x_all = torch.from_numpy(np.concatenate([t.column("feature").combine_chunks().flatten().to_numpy(
        zero_copy_only=False).reshape(-1, source.dim) for t in table]))
    t0, rows = time.perf_counter(), 0
    perm = torch.randperm(x_all.shape[0])
    for s in range(0, x_all.shape[0] - 127, 128):
        x = x_all[perm[s : s + 128]].float()
        rows += x.shape[0]
    return streaming, rows / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ddp_bench_") as tmp:
        root = Path(tmp)
        feats, emb = write_synthetic(root, rows=args.rows, dim=args.dim, classes=100, emb_dim=32, shards=4)
        stream_rate, mem_rate = loader_rates(feats, emb)
        t1 = epoch_seconds(root, feats, emb, 1, args.epochs)
        t2 = epoch_seconds(root, feats, emb, 2, args.epochs)
    print(f"CADA-VAE epoch, {args.rows} rows × D={args.dim}, batch 128, CPU, 1 thread per worker")
    print(f"{'setting':<34}{'seconds':>10}{'samples/s':>12}")
    print(f"{'1 worker (single process)':<34}{t1:>10.2f}{args.rows / t1:>12.0f}")
    print(f"{'2 DDP workers (gloo)':<34}{t2:>10.2f}{args.rows / t2:>12.0f}")
    print(f"{'loader: streaming parquet shards':<34}{'':>10}{stream_rate:>12.0f}")
    print(f"{'loader: in-memory tensors':<34}{'':>10}{mem_rate:>12.0f}")
    print(f"streaming ÷ in-memory loader: {stream_rate / mem_rate:.2f}")
    print(f"ratio: {t1 / t2:.2f}")


if __name__ == "__main__":
    main()
