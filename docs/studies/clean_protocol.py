"""Why does the clean protocol's validation curve peak earlier than the test curve? (issue #14, item 3)

    python docs/studies/clean_protocol.py --seed 0 --reparam consistent --out /tmp/study --vae-cache runs/clean-s0

For one seed and one σ form it trains the VAE of every validation class fold (the ``val`` classes, then
up to three disjoint sets of 20 ``train`` classes) and the trainval VAE of the test phase, and records the
classifier's per-epoch curves up to ``--max-epochs`` for GZSL, ZSL and GFSL 1/2/5/10 on every phase. The
test phase's curves are a **diagnosis only**: selection rules are applied to validation curves, and the
test curve is read at the epoch a rule chose, to report what the rule does to test after what it does to
validation. Resumable: each phase's curves are written to ``<out>/<reparam>-s<seed>/<phase>.json``, each
trained VAE to ``<vae-cache>/vae/`` (where ``zsl-scale evaluate --out <vae-cache>`` finds it again).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from zsl_scale.core import PACKAGE_DATA, atomic_write_json, load_config
from zsl_scale.datasets import resolve_benchmark
from zsl_scale.protocol import make_phase
from zsl_scale.protocol.evaluate import classify_phase, train_phase

SHOTS = [0, 1, 2, 5, 10]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reparam", choices=["consistent", "authors"], default="consistent")
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--max-epochs", type=int, default=80)
    ap.add_argument("--no-test", action="store_true", help="validation folds only (compare settings on them)")
    ap.add_argument("--only", default="", help="comma-separated phases to run (e.g. test), for parallel runs")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--vae-cache", type=Path, required=True,
                    help="a run folder: its vae/ holds the trained VAEs, for `zsl-scale evaluate --out` to reuse")
    args = ap.parse_args()
    overrides = [f"seed={args.seed}", f"model.reparam={args.reparam}", f"classifier.max_epochs={args.max_epochs}",
                 f"classifier.max_epochs_gfsl={args.max_epochs}"]
    cfg = load_config(PACKAGE_DATA / "configs" / "paper.yaml", overrides=[*overrides, "device=cpu"])
    bench, device = resolve_benchmark(cfg.benchmark), torch.device("cpu")
    out = args.out / f"{args.reparam}-s{args.seed}"
    # The first two folds, then the test phase (the trainval VAE a protocol run reuses), then further folds.
    vals = [("val", f) for f in range(args.folds)]
    phases = vals[:2] + ([] if args.no_test else [("test", 0)]) + vals[2:]
    if args.only:
        phases = [p for p in phases if (f"val{p[1]}" if p[0] == "val" else "test") in args.only.split(",")]
    for name, fold in phases:
        path = out / (f"val{fold}.json" if name == "val" else "test.json")
        if path.exists():
            continue
        t0 = time.perf_counter()
        trained = train_phase(bench, make_phase(bench, name, cfg, 0, args.seed, fold), cfg, device, args.seed,
                              log=lambda m: print(m, flush=True), label=path.stem, cache=args.vae_cache / "vae")
        curves = {}
        for k in SHOTS:
            phase = make_phase(bench, name, cfg, k, args.seed, fold)
            curves[str(k)] = classify_phase(bench, trained, phase, cfg, device, args.seed).curves
        atomic_write_json(path, {"phase": name, "fold": fold, "seed": args.seed, "reparam": args.reparam,
                                 "n_seen": len(phase.seen_classes), "n_unseen": len(phase.unseen_classes),
                                 "n_train_rows": len(phase.train_rows),
                                 "seconds": round(time.perf_counter() - t0, 1), "curves": curves,
                                 "note": "test curves are a diagnosis only" if name == "test" else "validation"})
        print(f"{path}: {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
