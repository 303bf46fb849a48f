"""Scale rehearsal: the ImageNet job's stages on synthetic shards in the real format, at two data sizes.

Full size (``--fractions 1.0``): 1.28M × 1280-d float16 training features over 1,000 classes, class
embeddings for 21,841 classes, 1M test queries. Each stage runs in its own subprocess (so its peak RSS,
``getrusage`` ru_maxrss, is its own) at every fraction; the table gives rows/s and peak RSS per stage,
and RSS(large) ÷ RSS(small). A stage whose memory grows with the data shows a ratio near the size
ratio; "bounded memory, streams everything" means every ratio stays ≤ 1.3 for 10× the data.

Seconds are each stage's own work (no interpreter start-up or imports); ``train`` times only its
fixed number of steps (its scaler pass is the ``scaler`` stage), so its rows/s is the training rate.

Stages (what the job does at each step, with the package's own streaming code):

- ``write``: synthetic training and test shards + embeddings (``datasets.write_synthetic``);
- ``scaler``: open the training shards (schema + per-class counts) and fit the min-max scaler, one pass;
- ``train``: a fixed number of CADA-VAE steps on the DDP stream (``iter_worker_batches`` → ``train_step``);
- ``classifier``: the latent bank (one streaming pass over the training features) and a fixed number of
  classifier epochs over the All search space (1,000 seen + 20,841 unseen classes);
- ``latents``: μ of every test feature, streamed shard by shard into latent parquet shards;
- ``score``: top-1/top-5 of every test latent over the All search space, streamed (``score_stream``).

    python benchmarks/imagenet_scale.py --fractions 0.01 0.1 --work /tmp/zsl-scale-rehearsal
    python benchmarks/imagenet_scale.py --fractions 0.1 1.0     # the issue's sizes (disk: ~6 GB)

The last line is ``ratio: <min over stages of RSS(smallest) ÷ RSS(largest)>`` (≥ 0.77 ⇔ every stage
grows ≤ 1.3× in memory for 10× the data).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TRAIN_ROWS, TEST_ROWS, DIM, SEEN, ALL, EMB = 1_281_167, 1_000_000, 1280, 1000, 21_841, 512
SHARD_ROWS, TRAIN_STEPS, BATCH = 25_600, 20, 128
STAGES = ("write", "scaler", "train", "classifier", "latents", "score")


def _sizes(fraction: float) -> tuple[int, int]:
    return max(SEEN * 4, round(TRAIN_ROWS * fraction)), max(10_000, round(TEST_ROWS * fraction))


def stage_write(work: Path, fraction: float) -> tuple[int, float]:
    from zsl_scale.datasets.synthetic import write_synthetic

    train, test = _sizes(fraction)
    t0 = time.perf_counter()
    write_synthetic(work / "train", train, DIM, SEEN, EMB, shards=max(1, train // SHARD_ROWS), seed=0,
                    extra_classes=ALL - SEEN)
    write_synthetic(work / "test", test, DIM, SEEN, EMB, shards=max(1, test // SHARD_ROWS), seed=1)
    return train + test, time.perf_counter() - t0


def _job(work: Path):
    from zsl_scale.distributed import DistJobConfig, load_class_table, open_features, prepare_job

    cfg = DistJobConfig(data={"features": str(work / "train/features"),
                              "embeddings": str(work / "train/embeddings.parquet")})
    source = open_features(cfg.data.features)
    return prepare_job(cfg, source, load_class_table(cfg.data.embeddings))


def stage_scaler(work: Path, fraction: float) -> tuple[int, float]:
    t0 = time.perf_counter()
    job = _job(work)
    return job.source.num_rows, time.perf_counter() - t0


def stage_train(work: Path, fraction: float) -> tuple[int, float]:
    import torch

    from zsl_scale.cada import CadaVae, make_optimizer, train_step, warmup_weights
    from zsl_scale.distributed.streaming import iter_worker_batches, step_noise

    job = _job(work)  # (the scaler pass is timed in its own stage; its RSS is bounded there too)
    torch.manual_seed(0)
    vae = CadaVae(job.model_cfg)
    opt = make_optimizer(vae, job.cfg.train)
    classes, stats = torch.from_numpy(job.classes.vectors), job.scaler.torch_stats("cpu")
    weights = warmup_weights(30, job.cfg.train)
    t0 = time.perf_counter()
    for step, part in enumerate(iter_worker_batches(job.plan(), job.classes, 0, 0, 1)):
        if step == TRAIN_STEPS:
            break
        eps = step_noise(0, 0, step, len(vae.names), job.cfg.train.batch_size)
        batch = {"image": job.scaler.transform_torch(torch.from_numpy(part.features), stats),
                 "class": classes[torch.from_numpy(part.labels)], "_eps": eps}
        train_step(vae, opt, batch, weights)
    seconds = time.perf_counter() - t0
    torch.save({"model": vae.state_dict(), "scaler": job.scaler, "cfg": job.model_cfg}, work / "vae.pt")
    return TRAIN_STEPS * job.cfg.train.batch_size, seconds


def _vae(work: Path):
    import torch

    from zsl_scale.cada import CadaVae

    state = torch.load(work / "vae.pt", weights_only=False)
    vae = CadaVae(state["cfg"])
    vae.load_state_dict(state["model"])
    return vae.eval(), state["scaler"]


def stage_classifier(work: Path, fraction: float) -> tuple[int, float]:
    import torch

    from zsl_scale.core import ClassifierConfig
    from zsl_scale.distributed import build_bank, load_class_table, open_features, train_classifier

    vae, scaler = _vae(work)
    t0 = time.perf_counter()
    source = open_features(work / "train/features")
    table = load_class_table(work / "train/embeddings.parquet")
    seen = sorted(source.class_counts)
    unseen = sorted(set(table.wnids) - set(seen))
    cfg = ClassifierConfig(seen_samples=10, unseen_samples=2, batch_size=1024, epochs=1)
    with torch.no_grad():
        bank = build_bank(vae, source, table, seen, unseen, cfg, scaler)
    linear, _ = train_classifier(bank, cfg, epochs=1)
    np.savez(work / "classifier.npz", weight=linear.weight.detach().numpy(), bias=linear.bias.detach().numpy(),
             wnids=np.array(seen + unseen))
    return source.num_rows, time.perf_counter() - t0


def stage_latents(work: Path, fraction: float) -> tuple[int, float]:
    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch

    from zsl_scale.core import atomic_write_parquet, vector_array

    vae, scaler = _vae(work)
    stats = scaler.torch_stats("cpu")
    out, rows, t0 = work / "test-latents", 0, time.perf_counter()
    out.mkdir(exist_ok=True)
    for path in sorted((work / "test/features").glob("*.parquet")):
        parts = []
        for rb in pq.ParquetFile(path).iter_batches(batch_size=8192, columns=["wnid", "feature"]):
            x = rb.column(1).flatten().to_numpy(zero_copy_only=False).reshape(len(rb), DIM)
            with torch.no_grad():
                mu, _ = vae.encode("image", scaler.transform_torch(torch.from_numpy(x.astype(np.float32)), stats))
            parts.append(pa.table({"wnid": rb.column(0), "feature": vector_array(mu.numpy())}))
            rows += len(rb)
        atomic_write_parquet(out / path.name, pa.concat_tables(parts))
    return rows, time.perf_counter() - t0


def stage_score(work: Path, fraction: float) -> tuple[int, float]:
    from zsl_scale.scoring.score import Scorer, iter_parquet_batches, linear_table, score_stream

    t0 = time.perf_counter()
    clf = np.load(work / "classifier.npz")
    wnids = [str(w) for w in clf["wnids"]]
    scorer = Scorer(linear_table(wnids, clf["weight"], clf["bias"]), k=5, device="cpu")
    acc = score_stream(scorer, iter_parquet_batches(sorted((work / "test-latents").glob("*.parquet")), wnids),
                       ks=(1, 5))
    return int(acc.totals.sum()), time.perf_counter() - t0


def run_stage(stage: str, work: Path, fraction: float) -> dict:
    cmd = [sys.executable, __file__, "--stage", stage, "--work", str(work), "--fractions", str(fraction)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise SystemExit(f"stage {stage} failed: {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.1, 1.0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/zsl-scale-rehearsal"))
    ap.add_argument("--stage", choices=STAGES)
    ap.add_argument("--keep", action="store_true", help="keep the synthetic data")
    args = ap.parse_args()
    if args.stage:
        rows, seconds = globals()[f"stage_{args.stage}"](args.work, args.fractions[0])
        print(json.dumps({"rows": rows, "seconds": seconds,
                          "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
        return
    results: dict[float, dict[str, dict]] = {}
    for fraction in args.fractions:
        work = args.work / f"f{fraction:g}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        results[fraction] = {s: run_stage(s, work, fraction) for s in STAGES}
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    lo, hi = min(args.fractions), max(args.fractions)
    print(f"# ImageNet-size rehearsal: train {TRAIN_ROWS} x {DIM}-d fp16 / {SEEN} classes, {ALL} classes, "
          f"{TEST_ROWS} test queries; fractions {args.fractions}")
    print(f"{'stage':11s} {'fraction':>8s} {'rows':>9s} {'seconds':>8s} {'rows/s':>9s} {'peakRSS MiB':>12s}")
    for stage in STAGES:
        for fraction in args.fractions:
            r = results[fraction][stage]
            print(f"{stage:11s} {fraction:8g} {r['rows']:9d} {r['seconds']:8.1f} {r['rows'] / r['seconds']:9.0f} "
                  f"{r['peak_rss_mib']:12.0f}")
    ratios = {s: results[lo][s]["peak_rss_mib"] / results[hi][s]["peak_rss_mib"] for s in STAGES}
    for stage, r in ratios.items():
        print(f"RSS({hi:g}) / RSS({lo:g}) {stage:11s} {1 / r:.3f}")
    print(f"ratio: {min(ratios.values()):.3f}")


if __name__ == "__main__":
    main()
