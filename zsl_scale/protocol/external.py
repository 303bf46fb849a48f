"""``zsl-scale evaluate BENCH --predictions FILE``: a small benchmark's test outputs made elsewhere, scored here.

The file (schema: :mod:`zsl_scale.scoring.predictions`) must hold one row per test image of the test
phase — the benchmark's ``test_seen`` and ``test_unseen`` images, the very rows every method of
:mod:`zsl_scale.protocol.methods` is scored on — and rank all the benchmark's classes (the GZSL search
space; class ids are the benchmark's class names). S, U, H and ZSL come from :func:`phase_metrics`, the
function that scores the built-in methods, so a file written from a method's own test logits gives
exactly its numbers. The results file says ``selection: external`` (how the producer chose its
hyper-parameters is not known here) and carries the file's sha256; the leaderboard never averages or ranks
it with validated rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zsl_scale.core import ProtocolConfig, atomic_write_text, dump_config
from zsl_scale.datasets import Benchmark, resolve_benchmark
from zsl_scale.protocol.methods import Log, phase_metrics
from zsl_scale.protocol.phases import make_phase
from zsl_scale.results import Metrics, ResultRecord, benchmark_manifest, build_record, write_result
from zsl_scale.scoring import (
    accumulate,
    check_classes,
    match_images,
    per_class_accuracy,
    ranked,
    read_predictions,
)

TOP_K = (1, 5)


def run_predictions(path: Path, cfg: ProtocolConfig, out_dir: str | Path, log: Log = print,
                    bench: Benchmark | None = None) -> ResultRecord:
    """Score the prediction file ``path`` on ``cfg.benchmark``'s GZSL test phase; one results file."""
    out = Path(out_dir)
    bench = bench or resolve_benchmark(cfg.benchmark)
    pred = read_predictions(path)
    phase = make_phase(bench, "test", cfg, 0, cfg.seed)
    what = f"{bench.name} (its test_seen + test_unseen images)"
    rows = np.concatenate([phase.eval_seen_rows, phase.eval_unseen_rows])
    at = match_images(pred, [bench.image_ids[r] for r in rows], what)
    space = np.union1d(phase.seen_classes, phase.unseen_classes)
    names = [bench.class_names[c] for c in space]
    check_classes(pred, names, f"{bench.name}")
    n_seen = len(phase.eval_seen_rows)
    ranks = ranked(pred, at, names, max(TOP_K))
    top1 = _top1(ranks, space)
    unseen_names = [bench.class_names[c] for c in phase.unseen_classes]
    zsl_ranks = ranked(pred, at[n_seen:], unseen_names, 1)[:, 0]
    y = bench.labels[rows]
    m = phase_metrics(y[:n_seen], top1[:n_seen], y[n_seen:], top1[n_seen:], _top1(zsl_ranks[:, None],
                                                                                  phase.unseen_classes))
    pos = {c: i for i, c in enumerate(space)}
    acc = accumulate(ranks[n_seen:], np.array([pos[c] for c in y[n_seen:]]), len(space), TOP_K)
    per_class = per_class_accuracy(y, top1)
    metrics = Metrics(S=100 * m["S"], U=100 * m["U"], H=100 * m["H"], zsl=100 * m["zsl"],
                      top_k={f"top{k}": 100 * acc.mean(k) for k in TOP_K},
                      per_class={bench.class_names[c]: 100 * v for c, v in per_class.items()})
    config = {**cfg.model_dump(mode="json"), "predictions": {"path": str(Path(path).resolve()), "format": pred.kind}}
    atomic_write_text(out / "config_predictions.yaml", dump_config(cfg))
    rec = build_record(
        dataset=bench.name, split="xlsa17", method=pred.method, seed=cfg.seed, setting="gzsl",
        selection="external", selection_source=pred.selection_source(), metrics=metrics,
        config=config, manifests={"benchmark": benchmark_manifest(bench.info), "predictions": pred.sha256},
        seeds={"phases": cfg.seed}, device="cpu",
        extra={"shots": 0, "predictions": pred.provenance(), "images": len(rows), "search_space": len(space)})
    written = write_result(rec, out / "results")
    log(f"[{pred.method} gzsl, external] S {metrics.S:.1f}  U {metrics.U:.1f}  H {metrics.H:.1f}  "
        f"ZSL {metrics.zsl:.1f} → {written}")
    return rec


def _top1(ranks: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Class of each row's first rank; a row with none (a topk list without any of ``classes``) is −1: a miss."""
    first = ranks[:, 0]
    return np.where(first >= 0, classes[np.maximum(first, 0)], -1)
