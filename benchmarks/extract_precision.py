"""Images/s of feature extraction at fp32 and bf16: the plain loop and the Ray pipeline, same images and batches.

Four pipelines per round, rounds interleaved (this shared VM's speed drifts within minutes): the plain
single-process loop (decode + forward, 2 torch threads) and ``extract_features`` on a local Ray runtime
(2 model actors × 1 thread, decoding their own chunks, writing shards and manifest), each at
``--precision fp32`` and ``bf16`` (channels_last; EfficientNet-Lite0's stem and first blocks stay fp32,
docs/features.md "Precision"). Ray's own start-up is excluded (paid once per session); model loading and
actor start-up are included.

Where the CPU has no bf16 units (no AVX512_BF16 / AMX) extraction refuses bf16; this benchmark sets
``ZSL_SCALE_ALLOW_EMULATED_BF16=1`` to measure the emulated rate anyway and says so in its header.

    python benchmarks/extract_precision.py [--images DIR] [--limit N] [--repeats 3]
    python benchmarks/extract_precision.py --flowers --limit 2000     # Flowers-102 jpg64.tar, read in place

The last line is ``ratio: <Ray bf16 images/s ÷ Ray fp32 images/s>`` (medians of the rounds).
"""

from __future__ import annotations

import os
import statistics
import tempfile
from pathlib import Path

import torch
from extract_throughput import _flowers_list, _subset, plain_loop, ray_pipeline, source_args

from zsl_scale.core import cpu_has_native_bf16
from zsl_scale.core.precision import ALLOW_EMULATED_ENV


def main() -> None:
    args = source_args(__doc__).parse_args()

    import ray

    native = cpu_has_native_bf16()
    os.environ[ALLOW_EMULATED_ENV] = "1"
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_worker_niceness", "0")  # same priority as the plain loop (Ray's default: 15)
    ray.init(num_cpus=2, object_store_memory=300 * 1024 * 1024, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    runs: dict[str, list[tuple[int, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="zsl-bench-src-") as tmp:
        images = _flowers_list(Path(tmp)) if args.flowers else args.images
        src = _subset(images, args.limit, Path(tmp))
        for r in range(args.repeats):
            order = ("fp32", "bf16") if r % 2 == 0 else ("bf16", "fp32")  # neither side always goes first
            for precision in order:
                runs.setdefault(f"plain loop, 2 threads, {precision}", []).append(
                    plain_loop(src, None, args.backbone, args.batch_size, 2, precision))
                torch.set_num_threads(1)  # the driver only assembles shards
                runs.setdefault(f"ray, 2 workers x 1 thread, {precision}", []).append(
                    ray_pipeline(src, args.backbone, args.batch_size, 2, args.shard_size, precision=precision))
    ray.shutdown()

    n_images = next(iter(runs.values()))[0][0]
    load = os.getloadavg()[0]
    print(f"backbone={args.backbone} batch_size={args.batch_size} images={n_images} cpus={os.cpu_count()} "
          f"repeats={args.repeats} load_avg_1min={load:.1f}")
    kind = "native (AVX512_BF16 or AMX)" if native else "EMULATED (no AVX512_BF16 / AMX): extraction refuses it here"
    print(f"bf16: {kind}")
    print(f"{'pipeline':<34} {'images':>7} {'images/s (median)':>18}   runs")
    rate = {}
    for name, results in sorted(runs.items()):
        rates = [n / sec for n, sec in results]
        rate[name] = statistics.median(rates)
        print(f"{name:<34} {results[0][0]:>7d} {rate[name]:>18.2f}   {', '.join(f'{x:.1f}' for x in rates)}")
    plain = rate["plain loop, 2 threads, bf16"] / rate["plain loop, 2 threads, fp32"]
    print(f"plain loop bf16 ÷ fp32: {plain:.3f}")
    print(f"ratio: {rate['ray, 2 workers x 1 thread, bf16'] / rate['ray, 2 workers x 1 thread, fp32']:.3f}")


if __name__ == "__main__":
    main()
