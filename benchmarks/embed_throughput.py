"""Class-embedding throughput (classes/s) vs batch size, for the default sentence encoder.

Encodes the same ``--n`` class texts ("<lemmas>: <gloss>", the real ImageNet ones) at each batch
size with one loaded model, after one warm-up batch; model loading is excluded (it is paid once per
run). The baseline is batch size 1 (no batching), measured in the same run on the same texts.

    .venv/bin/python benchmarks/embed_throughput.py [--n 256] [--batch-sizes 1,8,32,64,128] [--device auto]

The last line is ``ratio: <best batched classes/s ÷ batch-1 classes/s>``.
"""

from __future__ import annotations

import argparse
import time

import torch

from zsl_scale.embeddings.embed import class_text, resolve_text_model, sentence_encoder
from zsl_scale.imagenet.classes import imagenet_classes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256, help="classes encoded per batch size")
    ap.add_argument("--batch-sizes", default="1,8,32,64,128")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--model", default="default", help="'default' or a local sentence-transformers dir")
    args = ap.parse_args()
    sizes = [int(x) for x in args.batch_sizes.split(",")]
    wnids = list(imagenet_classes("all"))
    step = max(1, len(wnids) // args.n)
    texts = [class_text(w) for w in wnids[::step][: args.n]]
    model = resolve_text_model(args.model)
    rates: dict[int, float] = {}
    print(f"model {model.model_id} ({model.fingerprint}), {len(texts)} classes, torch threads "
          f"{torch.get_num_threads()}, device {args.device}")
    print(f"{'batch':>6} {'seconds':>8} {'classes/s':>10}")
    for bs in sizes:
        encode = sentence_encoder(model, batch_size=bs, device=args.device)
        encode(texts[:bs])  # warm-up: first-call allocations and kernel selection
        t0 = time.perf_counter()
        encode(texts)
        seconds = time.perf_counter() - t0
        rates[bs] = len(texts) / seconds
        print(f"{bs:>6} {seconds:>8.2f} {rates[bs]:>10.1f}")
    base = rates.get(1) or rates[min(rates)]
    best = max(v for k, v in rates.items() if k != 1) if len(rates) > 1 else base
    print(f"ratio: {best / base:.2f}")


if __name__ == "__main__":
    main()
