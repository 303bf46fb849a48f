"""The ``methods`` stage of a job on a small dataset: the baselines on the job's own features, scored by its scorer.

Every listed method is evaluated exactly as ``zsl-scale evaluate BENCH --method NAME`` evaluates it — the same
validation phases and class folds, the same grid, the same choice rule (:func:`zsl_scale.protocol.select`),
the same ``trainval`` retraining and min-max statistics — but on the features the job's Ray stage extracted
(:func:`zsl_scale.jobs.small.load_job_benchmark`) and with the protocol settings of the job's validation stage.
What differs is the last step: the test images are ranked by the job's chunked :class:`~zsl_scale.scoring.Scorer`
(the score stage's kernel, tie rule and per-class means) over the method's class table, as CADA-VAE's latents
are, instead of the reference path's in-memory arg-max. Both rank the same float32 logits; they can differ
only where two classes' logits are equal to rounding (tests/jobs/test_bench.py states the tolerance).

Resume: ``done/<method>.json`` is written after a method's results; a re-run skips the methods already done.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from zsl_scale.core import ConfigError
from zsl_scale.jobs.registry import StageContext
from zsl_scale.jobs.settings import settings_of
from zsl_scale.jobs.small import load_job_benchmark, run_config_of, small_classes

DEFAULT_METHODS = ("eszsl", "devise", "sje", "ale", "conse")


def method_names(stage: str, names: list[str] | str) -> list[str]:
    """The stage's ``methods``: a list of registry names (default: the fast baselines). Grids are the
    registry's — a benchmark job has a validation split, so nothing is fixed in advance."""
    from zsl_scale.methods import get_method

    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    if not isinstance(names, list) or not names:
        raise ConfigError(f"stage {stage!r}: 'methods' must be a list of method names, e.g. [eszsl, sje] "
                          "(hyper-parameters are chosen on the benchmark's validation split)")
    specs = [get_method(str(n)) for n in names]
    for spec in specs:
        if spec.make is None:
            raise ConfigError(f"stage {stage!r}: {spec.display} runs through the train / latents / score "
                              "stages, not the methods stage")
    return [s.name for s in specs]


def run_small_methods(ctx: StageContext) -> list[Path]:
    """Validate, retrain on ``trainval`` and score every listed method; one results JSON each (GZSL + ZSL)."""
    from zsl_scale.core import resolve_device

    cfg = settings_of(ctx)
    names = method_names(ctx.spec.name, cfg.methods)
    run_cfg = run_config_of(ctx)
    bench = load_job_benchmark(ctx, cfg.features)
    device = resolve_device(cfg.device)
    written: list[Path] = []
    for name in names:
        finished = ctx.finished_part(name)
        if finished is not None:
            written += finished
            continue
        t0 = time.perf_counter()
        path = _run_one(ctx, name, bench, run_cfg, device)
        ctx.mark_part(name, [path], time.perf_counter() - t0)
        written.append(path)
    return written


def _run_one(ctx: StageContext, name: str, bench: Any, run_cfg: Any, device: Any) -> Path:
    """One method: validation → ``trainval`` fit(s) → chunked scoring → a results file."""
    from zsl_scale.core import torch_threads
    from zsl_scale.methods import get_method
    from zsl_scale.protocol import fit_selected, plugin_provenance
    from zsl_scale.results import Metrics, build_record, job_chain_sha256, write_result

    spec = get_method(name)
    log = ctx.log
    t0, c0 = time.perf_counter(), time.process_time()
    where = settings_of(ctx).device
    with torch_threads(spec.threads):
        fit = fit_selected(spec, bench, run_cfg, 0, device, log, state_dir=ctx.out_dir / "state" / spec.name)
        gz = _chunked(fit.gzsl, fit.data, bench, np.union1d(fit.data.seen, fit.data.unseen), where)
        zsl = _chunked(fit.zsl, fit.data, bench, fit.data.unseen, where)["U"]
    sel = fit.selection
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    classes = small_classes(ctx)
    config = {**run_cfg.model_dump(mode="json"), "method": {"name": spec.name, "grid": spec.grid}}
    record = build_record(
        dataset=classes["benchmark"], split="xlsa17", method=spec.display, seed=run_cfg.seed, setting="gzsl",
        selection="validation",
        selection_source=f"validation ({run_cfg.eval.val_folds} class fold(s), grid search) in job {ctx.job.name}",
        metrics=Metrics(S=gz["S"], U=gz["U"], H=gz["H"], zsl=zsl, per_class=gz["per_class"]),
        config=config, manifests={"job": job_chain_sha256(ctx.upstream)},
        seeds={"method": run_cfg.seed, "phases": run_cfg.seed},
        device=str(device), full_provenance=False, provenance=plugin_provenance(spec),
        extra={"engine": "scale", "job": ctx.job.name, "method": spec.name, "kind": spec.kind,
               "reference": spec.reference, "selection": sel, "seconds": round(seconds, 1),
               "cpu_seconds": round(cpu, 1), "images": classes["images"], "subset": classes.get("subset"),
               "notes": settings_of(ctx).notes})
    log(f"[{spec.display}] S {gz['S']:.1f}  U {gz['U']:.1f}  H {gz['H']:.1f}  ZSL {zsl:.1f}  ({seconds:.1f} s)")
    return write_result(record, ctx.out_dir / "results")


def _chunked(fitted: Any, data: Any, bench: Any, space: np.ndarray, device: str) -> dict[str, Any]:
    """S, U, H (percent, per-class mean top-1) of the test images over ``space`` with the chunked scorer.

    Images of classes outside ``space`` (ZSL: the seen ones) are left out, as the score stage does.
    """
    import torch

    from zsl_scale.methods import class_table, queries
    from zsl_scale.scoring import Scorer, gzsl_metrics, score_stream

    names = [bench.class_names[int(c)] for c in space]
    table = class_table(fitted, space, names)
    pos = {int(c): n for n, c in enumerate(space)}

    def batches():
        for x, y in ((data.x_seen, data.y_seen), (data.x_unseen, data.y_unseen)):
            keep = np.array([int(c) in pos for c in y], bool)
            if keep.any():
                rows = np.array([pos[int(c)] for c in y[keep]], np.int64)
                yield queries(fitted, x[torch.as_tensor(keep, device=x.device)]), rows

    with Scorer(table, k=1, device=device) as scorer:
        acc = score_stream(scorer, batches())
    seen = [bench.class_names[int(c)] for c in data.seen if int(c) in pos]
    unseen = [bench.class_names[int(c)] for c in data.unseen]
    return gzsl_metrics(acc, table, seen, unseen)
