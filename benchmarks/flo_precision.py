"""Accuracy of low-precision feature extraction on Flowers-102: bf16 vs fp32 features, and what they do to S/U/H.

Two modes (docs/features.md, "Precision"):

    # per-image cosine between two feature sets (extracted shards, or ``mat`` = the shipped float32
    # res101_efflite0.mat, which our fp32 extraction reproduces to cosine 1 − 1.6e-12, docs/jobs.md)
    python benchmarks/flo_precision.py cosine --a mat --b /tmp/flo/bf16
    # CADA-VAE / ESZSL on the Flowers benchmark with its features replaced by a feature set
    python benchmarks/flo_precision.py evaluate --features /tmp/flo/bf16 --method cada --seed 0

``evaluate`` is the reference protocol (the code of ``zsl-scale evaluate``, paper config) on the bundled
Flowers split and embeddings, only the image features swapped. CADA-VAE's classifier epochs are fixed to
those the Flowers job's validation chose on fp32 features per seed (docs/jobs.md: 19/7, 18/12, 18/7), so
both precisions train and test the same way and only the features differ (a validation phase per run
would triple the cost and add its own choice noise). ESZSL runs its own validation (closed form, seconds).
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from zsl_scale.core.paths import shared_data_dir

# chosen (GZSL, ZSL) classifier epochs of the Flowers job's validation stage, fp32 features (docs/jobs.md)
JOB_EPOCHS = {0: (19, 7), 1: (18, 12), 2: (18, 7)}


def load_features(source: str) -> np.ndarray:
    """``[8189, 1280]`` float32 in xlsa17 row order: from ``mat`` (the shipped file) or an extracted set."""
    import pyarrow.parquet as pq

    from zsl_scale.features import xlsa17_images

    root = shared_data_dir() / "flo"
    if source == "mat":
        from scipy.io import loadmat

        return np.ascontiguousarray(loadmat(root / "res101_efflite0.mat")["features"].T.astype(np.float32))
    row_of = {im.image_id("flower"): im.row for im in xlsa17_images(root)}
    out = np.full((len(row_of), 1280), np.nan, np.float32)
    for f in sorted(Path(source).glob("part-*.parquet")):
        t = pq.read_table(f, columns=["image_id", "feature"])
        x = np.asarray(t.column("feature").combine_chunks().flatten(), np.float32).reshape(t.num_rows, -1)
        out[[row_of[i] for i in t.column("image_id").to_pylist()]] = x
    if np.isnan(out).any():
        raise SystemExit(f"{source}: {int(np.isnan(out).any(1).sum())} images missing")
    return out


def cosine(a: str, b: str) -> dict[str, float]:
    """Per-image cosine of two feature sets: min, 0.1 % quantile, median (float64 arithmetic)."""
    x, y = load_features(a).astype(np.float64), load_features(b).astype(np.float64)
    cos = (x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))
    rel = np.linalg.norm(x - y, axis=1) / np.linalg.norm(x, axis=1)
    return {"images": len(cos), "min": float(cos.min()), "q0.001": float(np.quantile(cos, 0.001)),
            "median": float(np.median(cos)), "rel_l2_max": float(rel.max()), "rel_l2_median": float(np.median(rel))}


def evaluate(features: str, method: str, seed: int) -> dict[str, object]:
    """S, U, H, ZSL of ``method`` on Flowers with ``features`` swapped in (reference protocol, CPU)."""
    import torch

    from zsl_scale.core import PACKAGE_DATA, load_config
    from zsl_scale.datasets.bundle import load_flo
    from zsl_scale.protocol import evaluate_method, evaluate_settings

    torch.set_num_threads(1)
    bench = load_flo()
    bench.features = load_features(features)
    cfg = load_config(PACKAGE_DATA / "configs" / "paper.yaml", [], benchmark="flo", seed=seed, device="cpu")
    t0 = time.perf_counter()
    if method == "cada":
        g, z = JOB_EPOCHS[seed]
        chosen = {"gzsl_epochs": g, "zsl_epochs": z, "source": "Flowers job validation, fp32 (docs/jobs.md)"}
        res = evaluate_settings(bench, cfg, torch.device("cpu"), log=lambda _m: None, selector=lambda _s: chosen)
        m = res[0].metrics
    else:
        from zsl_scale.methods import get_method

        m, _ = evaluate_method(get_method(method), bench, cfg, 0, torch.device("cpu"), log=lambda _m: None)
    return {"features": features, "method": method, "seed": seed, "seconds": round(time.perf_counter() - t0, 1),
            **{k: round(float(m[k]), 2) for k in ("S", "U", "H", "zsl")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    c = sub.add_parser("cosine")
    c.add_argument("--a", default="mat")
    c.add_argument("--b", required=True)
    e = sub.add_parser("evaluate")
    e.add_argument("--features", required=True, help="'mat' or an extracted feature folder")
    e.add_argument("--method", default="cada", help="cada or a registered baseline (eszsl, ...)")
    e.add_argument("--seed", type=int, default=0, choices=sorted(JOB_EPOCHS))
    args = ap.parse_args()
    out = cosine(args.a, args.b) if args.mode == "cosine" else evaluate(args.features, args.method, args.seed)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
