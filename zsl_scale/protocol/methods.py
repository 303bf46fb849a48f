"""The small-benchmark protocol for every registered method: the same phases, selection and metrics as CADA-VAE.

For each validation fold (:func:`zsl_scale.protocol.phases.make_phase`, the same clean rows and class
folds CADA-VAE uses) a method trains on the fold's training images and every point of its grid is scored
after every epoch on held-out seen images and the fold's unseen classes. The grid point and epoch with
the best fold-averaged H (ZSL: unseen accuracy) are kept; the method then retrains on ``trainval`` and is
scored once on ``test_seen``/``test_unseen``. Features are min-max scaled with statistics of each phase's
training images only, exactly as for CADA-VAE, so all methods see the same inputs.

GZSL ranks seen ∪ unseen classes; ZSL ranks the unseen classes only, with the same trained model (a
softmax method's ZSL classifier is its GZSL classifier restricted to the unseen rows).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zsl_scale.cada import FeatureScaler
from zsl_scale.core import (
    ProtocolConfig,
    atomic_write_text,
    dump_config,
    resolve_device,
    torch_threads,
)
from zsl_scale.datasets import Benchmark, resolve_benchmark
from zsl_scale.methods import Fitted, MethodSpec, TrainData, predict, scores
from zsl_scale.protocol.phases import Phase, make_phase, setting_name
from zsl_scale.results import Metrics, ResultRecord, benchmark_manifest, build_record, write_result
from zsl_scale.scoring import harmonic_mean, mean_per_class_accuracy, per_class_accuracy

Log = Callable[[str], None]


@dataclass
class PhaseData:
    """A phase's training data for a method and its scaled evaluation tensors."""

    train: TrainData
    x_seen: torch.Tensor
    y_seen: np.ndarray
    x_unseen: torch.Tensor
    y_unseen: np.ndarray
    seen: np.ndarray
    unseen: np.ndarray


def phase_data(bench: Benchmark, phase: Phase, device: torch.device, state_dir: Path | None = None,
               log: Log | None = None) -> PhaseData:
    """Scale features with the phase's training statistics; GFSL shots join the training images.

    ``state_dir``, ``log``: where a long-training method keeps resumable state and reports progress
    (:class:`~zsl_scale.methods.TrainData`).
    """
    feats = torch.as_tensor(bench.features, dtype=torch.float32)
    scaler = FeatureScaler.fit(feats[torch.as_tensor(phase.train_rows)])
    rows = np.concatenate([phase.train_rows, phase.shot_rows]).astype(np.int64)

    def take(r: np.ndarray) -> torch.Tensor:
        return scaler(feats[torch.as_tensor(r, dtype=torch.long)]).to(device)

    emb = torch.as_tensor(bench.class_embeddings, dtype=torch.float32).to(device)
    y = torch.as_tensor(bench.labels[rows], dtype=torch.long, device=device)
    train = TrainData(take(rows), y, emb, unseen=phase.unseen_classes, state_dir=state_dir, log=log)
    return PhaseData(train, take(phase.eval_seen_rows), bench.labels[phase.eval_seen_rows],
                     take(phase.eval_unseen_rows), bench.labels[phase.eval_unseen_rows],
                     phase.seen_classes, phase.unseen_classes)


def score_phase(fitted: Fitted, data: PhaseData) -> dict[str, float]:
    """S, U, H over seen ∪ unseen and ZSL over unseen only (fractions), per-class mean top-1.

    ZSL takes the arg-max over the unseen columns of the same logits, so each image is scored once.
    """
    space = np.union1d(data.seen, data.unseen)
    pred_seen = predict(fitted, data.x_seen, space)
    logits_u = scores(fitted, data.x_unseen, space)
    cols = torch.as_tensor(np.searchsorted(space, data.unseen), device=logits_u.device)
    return phase_metrics(data.y_seen, pred_seen, data.y_unseen, space[logits_u.argmax(dim=1).cpu().numpy()],
                         data.unseen[logits_u[:, cols].argmax(dim=1).cpu().numpy()])


def phase_metrics(y_seen: np.ndarray, pred_seen: np.ndarray, y_unseen: np.ndarray, pred_unseen: np.ndarray,
                  zsl_unseen: np.ndarray) -> dict[str, float]:
    """S, U, H (GZSL predictions) and ZSL (predictions among the unseen classes), per-class mean top-1.

    The one place these numbers are computed on a small benchmark: for a method's own logits
    (:func:`score_phase`) and for a prediction file made elsewhere (:mod:`zsl_scale.protocol.external`).
    """
    s = mean_per_class_accuracy(y_seen, pred_seen)
    u = mean_per_class_accuracy(y_unseen, pred_unseen)
    return {"S": s, "U": u, "H": harmonic_mean(s, u), "zsl": mean_per_class_accuracy(y_unseen, zsl_unseen)}


def _curves(spec: MethodSpec, data: PhaseData, seed: int) -> list[list[dict[str, float]]]:
    """Per grid point, the validation scores after every epoch (one entry for closed-form methods)."""
    assert spec.make is not None
    trainer = spec.make(data.train, seed)
    out = []
    for hp in spec.points():
        curve: list[dict[str, float]] = []
        fitted = trainer.fit(hp, on_epoch=lambda _e, f, curve=curve: curve.append(score_phase(f, data)))
        out.append(curve or [score_phase(fitted, data)])
    return out


def _best(spec: MethodSpec, mean: list[list[dict[str, float]]], key: str) -> dict[str, Any]:
    """The (grid point, epoch) with the best fold-averaged ``key``; the first one on ties."""
    flat = [(i, e, c[key]) for i, curve in enumerate(mean) for e, c in enumerate(curve)]
    i, e, val = max(flat, key=lambda t: (t[2], -t[0], -t[1]))
    hp = dict(spec.points()[i])
    if "epochs" in hp:
        hp["epochs"] = e + 1
    return {"hyper": hp, f"val_{key}": val}


def _tagged(log: Log, spec: MethodSpec, shots: int, phase: str) -> Log:
    """``log`` with the method, setting and phase in front (a method's own progress lines)."""
    return lambda msg: log(f"[{spec.display} {setting_name(shots)} {phase}] {msg}")


def select(spec: MethodSpec, bench: Benchmark, cfg: ProtocolConfig, shots: int, device: torch.device,
           log: Log = print, state_dir: Path | None = None) -> dict[str, Any]:
    """Hyper-parameters for GZSL (best validation H) and ZSL (best validation unseen accuracy)."""
    folds = []
    for fold in range(cfg.eval.val_folds):
        phase = make_phase(bench, "val", cfg, shots, cfg.seed, fold)
        tagged = _tagged(log, spec, shots, f"validation fold {fold}")
        folds.append(_curves(spec, phase_data(bench, phase, device, state_dir, tagged), cfg.seed))
    mean = [[{k: float(np.mean([f[i][e][k] for f in folds])) for k in folds[0][i][e]}
             for e in range(len(folds[0][i]))] for i in range(len(folds[0]))]
    gzsl, zsl = _best(spec, mean, "H"), _best(spec, mean, "zsl")
    log(f"[{spec.display} {setting_name(shots)}] chose {gzsl['hyper']} for GZSL (val H {100 * gzsl['val_H']:.1f}), "
        f"{zsl['hyper']} for ZSL (val ZSL {100 * zsl['val_zsl']:.1f})")
    return {"source": "validation", "protocol": cfg.eval.validation, "val_folds": cfg.eval.val_folds,
            "gzsl": gzsl, "zsl": zsl, "grid": spec.grid}


def evaluate_method(spec: MethodSpec, bench: Benchmark, cfg: ProtocolConfig, shots: int, device: torch.device,
                    log: Log = print, state_dir: Path | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validation → chosen hyper-parameters → trainval → one test score. Returns (metrics %, selection)."""
    assert spec.make is not None
    with torch_threads(spec.threads):  # the method's MethodSpec.threads
        return _evaluate(spec, bench, cfg, shots, device, log, state_dir)


@dataclass
class Selected:
    """A method fitted on the test phase's training images with the hyper-parameters validation chose."""

    selection: dict[str, Any]
    data: PhaseData
    gzsl: Fitted
    zsl: Fitted


def fit_selected(spec: MethodSpec, bench: Benchmark, cfg: ProtocolConfig, shots: int, device: torch.device,
                 log: Log = print, state_dir: Path | None = None) -> Selected:
    """Validation → chosen hyper-parameters → fit(s) on ``trainval`` (one more fit when ZSL chose others).

    Shared by the reference path (:func:`evaluate_method`) and a benchmark job's methods stage, which scores
    the same fits with the chunked scorer.
    """
    assert spec.make is not None
    sel = select(spec, bench, cfg, shots, device, log, state_dir)
    data = phase_data(bench, make_phase(bench, "test", cfg, shots, cfg.seed), device, state_dir,
                      _tagged(log, spec, shots, "trainval"))
    trainer = spec.make(data.train, cfg.seed)
    fitted = trainer.fit(sel["gzsl"]["hyper"])
    zfit = fitted if sel["zsl"]["hyper"] == sel["gzsl"]["hyper"] else trainer.fit(sel["zsl"]["hyper"])
    return Selected(sel, data, fitted, zfit)


def _evaluate(spec: MethodSpec, bench: Benchmark, cfg: ProtocolConfig, shots: int, device: torch.device,
              log: Log, state_dir: Path | None) -> tuple[dict[str, Any], dict[str, Any]]:
    fit = fit_selected(spec, bench, cfg, shots, device, log, state_dir)
    sel, data, fitted = fit.selection, fit.data, fit.gzsl
    test = score_phase(fitted, data)
    if fit.zsl is not fitted:
        test["zsl"] = score_phase(fit.zsl, data)["zsl"]
    space = np.union1d(data.seen, data.unseen)
    per_class = {**per_class_accuracy(data.y_seen, predict(fitted, data.x_seen, space)),
                 **per_class_accuracy(data.y_unseen, predict(fitted, data.x_unseen, space))}
    metrics = {k: 100 * v for k, v in test.items()}
    metrics["per_class"] = {bench.class_names[int(c)]: 100 * v for c, v in per_class.items()}
    return metrics, sel


def plugin_provenance(spec: MethodSpec) -> dict[str, Any]:
    """What a results file adds to its provenance for a plug-in method: where it came from (``method_plugin``)."""
    return {"method_plugin": dict(spec.origin)} if spec.origin else {}


def run_method(spec: MethodSpec, cfg: ProtocolConfig, out_dir: str | Path, log: Log = print,
               bench: Benchmark | None = None) -> list[ResultRecord]:
    """Evaluate ``spec`` for every shot count of ``cfg.eval.shots``; one results file per setting.

    A method with long training keeps resumable state under ``out_dir/state/<method>`` (f-CLSWGAN's GANs:
    an interrupted run picks up where it stopped; a finished GAN is reused by a re-run).
    """
    out, device = Path(out_dir), resolve_device(cfg.device)
    bench = bench or resolve_benchmark(cfg.benchmark)
    atomic_write_text(out / f"config_{spec.name}.yaml", dump_config(cfg))
    records = []
    for shots in dict.fromkeys(cfg.eval.shots):
        t0, c0 = time.perf_counter(), time.process_time()
        m, sel = evaluate_method(spec, bench, cfg, shots, device, log, state_dir=out / "state" / spec.name)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        config = {**cfg.model_dump(mode="json"), "method": {"name": spec.name, "grid": spec.grid}}
        rec = build_record(
            dataset=bench.name, split="xlsa17", method=spec.display, seed=cfg.seed, setting=setting_name(shots),
            selection="validation", selection_source=f"validation ({cfg.eval.val_folds} class fold(s), grid search)",
            metrics=Metrics(S=m["S"], U=m["U"], H=m["H"], zsl=m["zsl"], per_class=m["per_class"]),
            config=config, manifests={"benchmark": benchmark_manifest(bench.info)},
            seeds={"method": cfg.seed, "phases": cfg.seed}, device=device, provenance=plugin_provenance(spec),
            extra={"shots": shots, "selection": sel, "seconds": round(seconds, 1), "cpu_seconds": round(cpu, 1),
                   "method": spec.name,
                   "kind": spec.kind, "reference": spec.reference})
        path = write_result(rec, out / "results")
        log(f"[{spec.display} {rec.setting}] S {m['S']:.1f}  U {m['U']:.1f}  H {m['H']:.1f}  ZSL {m['zsl']:.1f}  "
            f"({seconds:.1f} s wall, {cpu:.1f} s CPU) → {path}")
        records.append(rec)
    return records
