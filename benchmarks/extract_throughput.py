"""Images/s of the Ray feature pipeline vs a plain single-process loop, same images, backbone, batch.

Baseline: one Python process that decodes, resizes and runs the backbone batch by batch (torch with
1 or 2 intra-op threads) — what one would write without Ray. Ours: ``extract_features`` on a local
Ray runtime with 1 or 2 model actors (1 torch thread each) that decode their own chunks (the CPU-only
default, ``decode: auto``; one more row: 2 actors fed by separate CPU decode tasks, the GPU layout), including
everything the command does (planning, actor start-up and model loading, writing parquet shards
and the manifest). Ray's own start-up (``ray.init``) is excluded: it is paid once per session or
cluster, not per job. Model loading is included on both sides.

    .venv/bin/python benchmarks/extract_throughput.py [--images DIR] [--limit N] [--batch-size 32]
    .venv/bin/python benchmarks/extract_throughput.py --flowers [--limit 2000]   # Flowers-102 jpg64.tar, read in place

The last line is ``ratio: <Ray, 2 workers × 1 thread ÷ plain loop, 2 threads>`` (medians of ``--repeats``
interleaved rounds).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from zsl_scale.core.paths import shared_data_dir
from zsl_scale.features.backbones import get_backbone
from zsl_scale.features.extract import ExtractOptions, extract_features
from zsl_scale.features.inputs import list_images, load_image


def plain_loop(source: Path, limit: int | None, backbone: str, batch_size: int, threads: int,
               precision: str = "fp32") -> tuple[int, float]:
    """Decode + forward in one process (``precision``: core.InferencePrecision, channels_last); returns
    (images, seconds)."""
    from zsl_scale.core import InferencePrecision

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    spec = get_backbone(backbone)
    chosen = InferencePrecision(precision, "channels_last")
    model = chosen.prepare(spec.load())
    _, refs = list_images(source)
    refs = refs[:limit] if limit else refs
    feats = []
    for start in range(0, len(refs), batch_size):
        imgs = [load_image(r.to_row(), spec.preprocess)[0] for r in refs[start : start + batch_size]]
        x = torch.from_numpy(np.stack([i for i in imgs if i is not None]))
        with torch.inference_mode():
            out = model.features(chosen.prepare(spec.preprocess.normalize(x)), chosen.low_precision("cpu"))
            feats.append(out.float().numpy())
    n = sum(len(f) for f in feats)
    return n, time.perf_counter() - t0


def ray_pipeline(source: Path, backbone: str, batch_size: int, workers: int, shard_size: int,
                 decode: str = "auto", precision: str = "fp32") -> tuple[int, float]:
    """The real ``features extract`` path on the running local Ray; returns (images, seconds)."""
    with tempfile.TemporaryDirectory(prefix="zsl-bench-") as tmp:
        opts = ExtractOptions(backbone=backbone, dtype="float32", batch_size=batch_size, shard_size=shard_size,
                              workers=workers, threads_per_worker=1, progress_interval_s=1e9,
                              decode=decode, precision=precision)  # type: ignore[arg-type]
        t0 = time.perf_counter()
        summary = extract_features(source, Path(tmp) / "out", opts)
        return summary.rows, time.perf_counter() - t0


def _flowers_list(tmp: Path) -> Path:
    """The Flowers-102 images as the flo job's splits stage lists them: ``<tar>::<member>`` lines, xlsa17 order."""
    from zsl_scale.features import write_image_list, xlsa17_images

    root = shared_data_dir() / "flo"
    return write_image_list(tmp / "flowers.tsv", root / "jpg64.tar", xlsa17_images(root), "flower")


def _subset(source: Path, limit: int | None, tmp: Path) -> Path:
    """The first ``limit`` images (a shorter list file, or a tree of symlinks), the same files for both sides."""
    if not limit:
        return source
    if source.is_file():  # a list file (e.g. --flowers): its first lines
        lines = source.read_text().splitlines(keepends=True)[:limit]
        (tmp / "subset.tsv").write_text("".join(lines))
        return tmp / "subset.tsv"
    _, refs = list_images(source)
    for ref in refs[:limit]:
        dest = tmp / ref.wnid / Path(ref.path).name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.symlink_to(ref.path)
    return tmp


def source_args(doc: str) -> argparse.ArgumentParser:
    """The options shared with extract_precision.py: which images, backbone, batch and shard sizes, rounds."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--images", type=Path, default=shared_data_dir() / "imagenet-samples")
    ap.add_argument("--flowers", action="store_true", help="the 8,189 Flowers-102 images inside jpg64.tar")
    ap.add_argument("--limit", type=int, default=None, help="use the first N images only")
    ap.add_argument("--backbone", default="efficientnet_lite0")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--shard-size", type=int, default=250)
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds; medians are reported")
    return ap


def main() -> None:
    ap = source_args(__doc__)
    ap.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray runtime")
    args = ap.parse_args()

    import ray

    from zsl_scale.core import init_ray

    # a fresh local runtime of --num-cpus, whatever RAY_ADDRESS or a stale cluster record say; its workers run
    # at the plain loop's priority (init_ray sets RAY_worker_niceness=0; Ray's default is 15)
    init_ray("local", cpus=args.num_cpus, object_store_memory=300 * 1024 * 1024)
    runs: dict[str, list[tuple[int, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="zsl-bench-src-") as tmp:
        images = _flowers_list(Path(tmp)) if args.flowers else args.images
        src = _subset(images, args.limit, Path(tmp))
        for _ in range(args.repeats):  # interleaved: this VM's speed drifts by 2x within minutes (docs/features.md)
            for threads in (1, 2):
                runs.setdefault(f"plain loop, {threads} thread(s)", []).append(
                    plain_loop(src, None, args.backbone, args.batch_size, threads))
            torch.set_num_threads(1)  # the driver only assembles shards
            for workers in (1, 2):
                runs.setdefault(f"ray, {workers} worker(s) x 1 thread", []).append(
                    ray_pipeline(src, args.backbone, args.batch_size, workers, args.shard_size))
            runs.setdefault("ray, 2 workers, decode tasks", []).append(
                ray_pipeline(src, args.backbone, args.batch_size, 2, args.shard_size, decode="tasks"))
    ray.shutdown()

    n_images = next(iter(runs.values()))[0][0]
    print(f"backbone={args.backbone} batch_size={args.batch_size} images={n_images} cpus={os.cpu_count()} "
          f"repeats={args.repeats}")
    print(f"{'pipeline':<32} {'images':>7} {'images/s (median)':>18}   runs")
    rate = {}
    for name, results in runs.items():
        rates = [n / sec for n, sec in results]
        rate[name] = statistics.median(rates)
        print(f"{name:<32} {results[0][0]:>7d} {rate[name]:>18.2f}   {', '.join(f'{r:.1f}' for r in rates)}")
    print(f"ratio: {rate['ray, 2 worker(s) x 1 thread'] / rate['plain loop, 2 thread(s)']:.3f}")


if __name__ == "__main__":
    main()
