"""The small-benchmark protocol: GZSL, ZSL and GFSL with epochs chosen on validation, never on test.

Two phases, identical except for their data:

* **validation** — the VAE trains on the ``train`` classes; the classifier is scored after every epoch
  on held-out seen-validation images and on the ``val`` (unseen-validation) classes, and the epoch count
  with the best validation H (ZSL: unseen accuracy) is kept. The ``clean`` protocol first drops the rows
  that xlsa17's ``train``/``val`` share with ``test_seen``, and holds out ``seen_val_fraction`` of each
  training class as seen-validation; ``xlsa17`` uses ``val`` as given (its rows overlap test_seen).
* **test** — the VAE retrains on ``trainval`` with the same settings and the classifier trains for exactly
  the chosen epochs; S, U (per-class mean top-1 over the seen ∪ unseen label space) and H are computed
  once on ``test_seen`` / ``test_unseen``.

Min-max feature scaling is fit on each phase's training images only. GFSL moves ``k`` images per unseen
class from the evaluation images into training: after the VAE is trained, their noisy encodings add
``fewshot_samples`` latents per unseen class to the classifier's training set (the authors' recipe).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zsl_scale.cada import (
    MIN_KEY,
    CadaVae,
    FeatureScaler,
    classify_latents,
    encode,
    fit_linear_softmax,
    load_model,
    paper_config,
    sample_per_class,
    save_model,
    scaler_from_extra,
    train_vae,
)
from zsl_scale.core import DataError, ProtocolConfig, load_torch_file, sha256_json
from zsl_scale.datasets import Benchmark
from zsl_scale.protocol.phases import Phase, make_phase, setting_name
from zsl_scale.scoring import harmonic_mean, mean_per_class_accuracy, per_class_accuracy

Log = Callable[[str], None]
Progress = Callable[[str, int, int], None]  # (phase label, epochs done, total epochs)


@dataclass
class TrainedPhase:
    """A VAE trained on one phase's training images, with the phase's scaled data on the device."""

    model: CadaVae
    scaler: FeatureScaler
    history: list[dict[str, float]]
    seconds: float


@dataclass
class PhaseOutcome:
    """What a classifier run produced: metrics (fractions, not percent) and, in validation, epoch curves."""

    gzsl: dict[str, float]
    zsl: float
    per_class: dict[str, float]
    curves: dict[str, list[float]]
    seconds: float


class _Data:
    """Benchmark tensors, scaled with a phase's training statistics and moved to the device on demand."""

    def __init__(self, bench: Benchmark, scaler: FeatureScaler | None, device: torch.device) -> None:
        self.feats = torch.as_tensor(bench.features, dtype=torch.float32)
        self.labels = torch.as_tensor(bench.labels, dtype=torch.long)
        self.emb = torch.as_tensor(bench.class_embeddings, dtype=torch.float32).to(device)
        self.scaler, self.device = scaler, device

    def rows(self, r: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(r, dtype=torch.long)
        assert self.scaler is not None
        return self.scaler(self.feats[idx]).to(self.device), self.labels[idx].to(self.device)


def train_phase(bench: Benchmark, phase: Phase, cfg: ProtocolConfig, device: torch.device, seed: int,
                log: Log = print, progress: Progress | None = None, label: str | None = None,
                cache: Path | None = None) -> TrainedPhase:
    """Fit the min-max scaler and train the VAE on the phase's training images only.

    With ``cache`` (a folder), a VAE trained earlier on exactly these inputs — benchmark files, training
    rows, seed, training and model settings (:func:`phase_key`) — is loaded instead of retrained, and a
    new one is saved there: an interrupted run resumes at the first untrained phase, and runs that share
    a phase (another protocol variant, a study) train it once.
    """
    path = cache / f"{label or phase.name}-{phase_key(bench, phase, cfg, seed)[:16]}.pt" if cache else None
    if path is not None and path.is_file():
        log(f"[{label or phase.name}] VAE loaded from {path}")
        return _load_phase(path, device)
    trained = _train_phase(bench, phase, cfg, device, seed, log, progress, label)
    if path is not None:
        save_trained(path, trained, cfg, bench)  # atomic: a killed run never leaves half a checkpoint
    return trained


def phase_key(bench: Benchmark, phase: Phase, cfg: ProtocolConfig, seed: int) -> str:
    """Everything a phase's trained VAE depends on, hashed (the cache key of :func:`train_phase`).

    ``train.precision`` enters the key only when it is not the default fp32, so VAEs cached before the
    setting existed (all fp32) keep their keys.
    """
    train = cfg.train.model_dump(mode="json")
    if train.get("precision") == "fp32":
        del train["precision"]
    return sha256_json({"benchmark": bench.name, "files": bench.info.get("files_sha256") or bench.info,
                        "rows": hashlib.sha256(np.ascontiguousarray(phase.train_rows, np.int64)).hexdigest(),
                        "seed": seed, "train": train, "model": _model_kwargs(cfg)})


def _checkpoint_extra(path: str | Path) -> dict:
    """The ``extra`` mapping of a model checkpoint; a file of another shape is one :class:`DataError` line."""
    payload = load_torch_file(path, "model checkpoint")
    extra = payload.get("extra") if isinstance(payload, dict) else None
    if not isinstance(extra, dict):
        raise DataError(f"{path} is not a zsl-scale model checkpoint (no 'extra' mapping)")
    return extra


def _load_phase(path: Path, device: torch.device) -> TrainedPhase:
    model, _ = load_model(path, device)
    extra = _checkpoint_extra(path)
    return TrainedPhase(model, scaler_from_extra(extra, str(path)), extra.get("history", []),
                        float(extra.get("seconds", 0.0)))


def _train_phase(bench: Benchmark, phase: Phase, cfg: ProtocolConfig, device: torch.device, seed: int,
                 log: Log, progress: Progress | None, label: str | None) -> TrainedPhase:
    t0 = time.perf_counter()
    data = _Data(bench, None, device)
    data.scaler = FeatureScaler.fit(data.feats[torch.as_tensor(phase.train_rows)])
    x_tr, y_tr = data.rows(phase.train_rows)
    torch.manual_seed(seed)
    model = CadaVae(paper_config(x_tr.shape[1], data.emb.shape[1], **_model_kwargs(cfg))).to(device)

    label = label or phase.name

    def on_vae_epoch(epoch: int, row: dict[str, float]) -> None:
        if progress is not None:
            progress(label, epoch + 1, cfg.train.epochs)
        if epoch % 10 == 9 or epoch == cfg.train.epochs - 1:
            log(f"[{label}] VAE epoch {epoch + 1}/{cfg.train.epochs}  loss {row['loss']:.1f}  "
                f"recon {row['recon']:.1f}  cross {row['cross']:.1f}  DA {row['distance']:.2f}")

    history = train_vae(model, x_tr, y_tr, data.emb, cfg.train, seed=seed, on_epoch=on_vae_epoch)
    return TrainedPhase(model, data.scaler, history, time.perf_counter() - t0)


def save_trained(path: str | Path, trained: TrainedPhase, cfg: ProtocolConfig, bench: Benchmark) -> Path:
    """Checkpoint a phase's VAE with everything needed to evaluate it later: scaler, config, history."""
    return save_model(path, trained.model, extra={
        "benchmark": bench.name, "seed": cfg.seed, "train_config": cfg.train.model_dump(mode="json"),
        **trained.scaler.to_extra(),
        "history": trained.history, "seconds": trained.seconds})


def load_trained(path: str | Path, cfg: ProtocolConfig, bench: Benchmark, device: torch.device) -> TrainedPhase:
    """Load a :func:`save_trained` checkpoint, refusing one trained on other data or with other settings."""
    extra = _checkpoint_extra(path)
    if MIN_KEY not in extra:
        raise DataError(f"{path}: not a trainval checkpoint from `zsl-scale train` (no scaler statistics)")
    if extra.get("benchmark") != bench.name or extra.get("seed") != cfg.seed:
        raise DataError(f"{path} was trained on {extra.get('benchmark')} with seed {extra.get('seed')}, "
                        f"not {bench.name} with seed {cfg.seed}")
    if extra.get("train_config") != cfg.train.model_dump(mode="json"):
        raise DataError(f"{path} was trained with other training settings than this run's config")
    return _load_phase(path, device)


def classify_phase(
    bench: Benchmark, trained: TrainedPhase, phase: Phase, cfg: ProtocolConfig, device: torch.device, seed: int,
    gzsl_epochs: int | None = None, zsl_epochs: int | None = None, trace: bool = False,
) -> PhaseOutcome:
    """Sample latents, train the GZSL and ZSL classifiers and score them on the phase's evaluation images.

    With ``gzsl_epochs``/``zsl_epochs`` None (validation) every epoch up to ``max_epochs`` (GFSL:
    ``max_epochs_gfsl``) is scored and
    the curves are returned; otherwise the classifiers train for exactly that many epochs and are
    scored once — unless ``trace`` (diagnosis only), which records the per-epoch curves of a fixed-epoch run
    too; nothing is chosen on them.
    """
    t0 = time.perf_counter()
    model, data = trained.model, _Data(bench, trained.scaler, device)
    x_tr, y_tr = data.rows(phase.train_rows)
    gen = torch.Generator().manual_seed(seed + 1)
    ccfg = cfg.classifier
    seen_t = torch.as_tensor(phase.seen_classes, device=device)
    unseen_t = torch.as_tensor(phase.unseen_classes, device=device)
    # Seen latents: noisy encodings of (resampled) training images.
    xs, ys = sample_per_class(x_tr, y_tr, ccfg.seen_samples, gen)
    z_seen = encode(model, "image", xs, noise=True, generator=gen)
    # Unseen latents: noisy encodings of copies of each unseen class embedding.
    yu = unseen_t.repeat_interleave(ccfg.unseen_samples)
    z_unseen = encode(model, "class", data.emb[yu], noise=True, generator=gen)
    if len(phase.shot_rows):  # GFSL: the few shots' encodings join the unseen latents
        x_shot, y_shot = data.rows(phase.shot_rows)
        xs2, ys2 = sample_per_class(x_shot, y_shot, ccfg.fewshot_samples, gen)
        z_unseen = torch.cat([z_unseen, encode(model, "image", xs2, noise=True, generator=gen)])
        yu = torch.cat([yu, ys2])

    x_es, y_es = data.rows(phase.eval_seen_rows)
    x_eu, y_eu = data.rows(phase.eval_unseen_rows)
    mu_es, mu_eu = encode(model, "image", x_es, noise=False), encode(model, "image", x_eu, noise=False)

    # GZSL: one label space over seen ∪ unseen, as contiguous indices.
    space = torch.cat([seen_t, unseen_t]).sort().values
    lookup = torch.full((bench.n_classes,), -1, dtype=torch.long, device=device)
    lookup[space] = torch.arange(len(space), device=device)
    y_train = lookup[torch.cat([ys, yu])]
    y_es_l, y_eu_l = lookup[y_es].cpu().numpy(), lookup[y_eu].cpu().numpy()
    curves: dict[str, list[float]] = {"S": [], "U": [], "H": [], "zsl": []}
    cap = ccfg.max_epochs_gfsl if len(phase.shot_rows) else ccfg.max_epochs

    def score_gzsl(layer: torch.nn.Module) -> dict[str, float]:
        s = mean_per_class_accuracy(y_es_l, classify_latents(layer, mu_es).cpu().numpy())
        u = mean_per_class_accuracy(y_eu_l, classify_latents(layer, mu_eu).cpu().numpy())
        return {"S": s, "U": u, "H": harmonic_mean(s, u)}

    def track(epoch: int, layer: torch.nn.Module) -> None:
        for k, v in score_gzsl(layer).items():
            curves[k].append(v)

    validating = gzsl_epochs is None or trace
    layer = fit_linear_softmax(torch.cat([z_seen, z_unseen]), y_train, len(space), ccfg,
                               gzsl_epochs or cap, seed=seed + 2, on_epoch=track if validating else None)
    gzsl = score_gzsl(layer)
    pred_s, pred_u = classify_latents(layer, mu_es).cpu().numpy(), classify_latents(layer, mu_eu).cpu().numpy()
    per_class = {bench.class_names[int(space[c])]: a for c, a in
                 {**per_class_accuracy(y_es_l, pred_s), **per_class_accuracy(y_eu_l, pred_u)}.items()}

    # ZSL: unseen classes only, trained on the unseen latents alone.
    u_lookup = torch.full((bench.n_classes,), -1, dtype=torch.long, device=device)
    u_lookup[unseen_t] = torch.arange(len(unseen_t), device=device)
    y_eu_z = u_lookup[y_eu].cpu().numpy()

    def track_zsl(epoch: int, zl: torch.nn.Module) -> None:
        curves["zsl"].append(mean_per_class_accuracy(y_eu_z, classify_latents(zl, mu_eu).cpu().numpy()))

    zl = fit_linear_softmax(z_unseen, u_lookup[yu], len(unseen_t), ccfg, zsl_epochs or cap,
                            seed=seed + 3, on_epoch=track_zsl if validating else None)
    zsl = mean_per_class_accuracy(y_eu_z, classify_latents(zl, mu_eu).cpu().numpy())
    return PhaseOutcome(gzsl, zsl, per_class, curves, time.perf_counter() - t0)


def _model_kwargs(cfg: ProtocolConfig) -> dict[str, Any]:
    return {"imagenet": cfg.model.imagenet, "reparam": cfg.model.reparam, "init_gain": cfg.model.init_gain}


def best_epoch(curve: list[float]) -> int:
    """1-based epoch of the first maximum of a validation curve."""
    return int(np.argmax(np.asarray(curve))) + 1


@dataclass
class SettingResult:
    """One evaluated setting (GZSL+ZSL for 0 shots, GFSL-k otherwise), metrics in percent."""

    setting: str
    shots: int
    metrics: dict[str, Any]
    selection: dict[str, Any]
    vae_history: list[dict[str, float]]
    seconds: float
    diagnostics: dict[str, Any] = field(default_factory=dict)  # never used to choose anything


Selector = Callable[[str], dict[str, Any] | None]


def validate(bench: Benchmark, cfg: ProtocolConfig, shots_list: list[int], device: torch.device, log: Log = print,
             progress: Progress | None = None, cache: Path | None = None) -> dict[int, dict[str, Any]]:
    """Choose GZSL and ZSL classifier epochs per shot count on the validation fold(s).

    Every fold trains its own VAE on its seen classes and scores each epoch of the classifiers on its
    held-out seen images and unseen classes; the chosen epoch maximises the curve averaged over folds.
    Averaging over several unseen-class sets keeps one hard (or easy) set of validation classes from
    pulling the choice towards too few (or too many) epochs.
    """
    seed, folds = cfg.seed, cfg.eval.val_folds
    curves: dict[int, list[dict[str, list[float]]]] = {k: [] for k in shots_list}
    seconds = 0.0
    for fold in range(folds):
        name = "val" if folds == 1 else f"val{fold}"
        trained = train_phase(bench, make_phase(bench, "val", cfg, 0, seed, fold), cfg, device, seed, log, progress,
                              label=name, cache=cache)
        seconds += trained.seconds
        for k in shots_list:
            val = classify_phase(bench, trained, make_phase(bench, "val", cfg, k, seed, fold), cfg, device, seed)
            curves[k].append(val.curves)
            seconds += val.seconds
    out = {}
    for k in shots_list:
        mean = {key: np.mean([c[key] for c in curves[k]], axis=0).tolist() for key in curves[k][0]}
        g_ep, z_ep = best_epoch(mean["H"]), best_epoch(mean["zsl"])
        out[k] = {"gzsl_epochs": g_ep, "zsl_epochs": z_ep, "source": "validation", "val_folds": folds,
                  "val_curves": mean, "val_H": mean["H"][g_ep - 1], "val_zsl": mean["zsl"][z_ep - 1],
                  "val_seconds": round(seconds, 1)}
        if folds > 1:
            out[k]["fold_curves"] = curves[k]
        log(f"[{setting_name(k)}] chose {g_ep} GZSL / {z_ep} ZSL classifier epochs "
            f"(val H {100 * out[k]['val_H']:.1f}, val ZSL {100 * out[k]['val_zsl']:.1f})")
    return out


def evaluate_settings(bench: Benchmark, cfg: ProtocolConfig, device: torch.device, log: Log = print,
                      progress: Progress | None = None, selector: Selector | None = None,
                      on_selection: Callable[[dict[str, dict[str, Any]]], None] | None = None,
                      trained_test: TrainedPhase | None = None, cache: Path | None = None) -> list[SettingResult]:
    """Validation phase → chosen epochs → test phase, for every shot count in ``cfg.eval.shots``.

    The VAE never sees unseen-class images (GFSL shots join only the classifier's training set), so one VAE
    per phase serves every shot count. Epochs come, in order of precedence, from ``cfg.classifier.epochs``
    (fixed), from ``selector(setting)`` (a previous validation, e.g. another seed's), or from this run's
    validation phase. ``on_selection`` receives this run's validation choices as soon as they exist
    (before the test phase), so that other seeds can start from them. ``trained_test`` is a trainval VAE
    from :func:`load_trained` (``zsl-scale train``) to evaluate instead of training one. ``cache``: see
    :func:`train_phase`.
    """
    seed, shots_list = cfg.seed, list(dict.fromkeys(cfg.eval.shots))
    selections: dict[int, dict[str, Any]] = {}
    for k in shots_list:
        if cfg.classifier.epochs is not None:
            selections[k] = {"gzsl_epochs": cfg.classifier.epochs, "zsl_epochs": cfg.classifier.epochs,
                             "source": cfg.classifier.epochs_source or "fixed by config"}
        elif selector is not None and (prev := selector(setting_name(k))) is not None:
            selections[k] = prev
    todo = [k for k in shots_list if k not in selections]
    if todo:
        log(f"validation phase: choosing classifier epochs for {[setting_name(k) for k in todo]}"
            f" over {cfg.eval.val_folds} class fold(s)")
        selections.update(validate(bench, cfg, todo, device, log, progress, cache))
        if on_selection is not None:
            on_selection({setting_name(k): selections[k] for k in todo})
    log("test phase: retraining the VAE on trainval")
    if trained_test is None:
        trained_test = train_phase(bench, make_phase(bench, "test", cfg, 0, seed), cfg, device, seed, log, progress,
                                   cache=cache)
    else:
        log("test phase: using the given trainval VAE checkpoint")
    trained = trained_test
    out = []
    for k in shots_list:
        sel = {"protocol": cfg.eval.validation, **selections[k]}
        test = classify_phase(bench, trained, make_phase(bench, "test", cfg, k, seed), cfg, device, seed,
                              gzsl_epochs=sel["gzsl_epochs"], zsl_epochs=sel["zsl_epochs"], trace=cfg.eval.test_curve)
        metrics = {"S": 100 * test.gzsl["S"], "U": 100 * test.gzsl["U"], "H": 100 * test.gzsl["H"],
                   "zsl": 100 * test.zsl, "per_class": {c: 100 * v for c, v in test.per_class.items()}}
        diagnostics = {"test_curve_never_used_for_selection": test.curves} if cfg.eval.test_curve else {}
        out.append(SettingResult(setting_name(k), k, metrics, sel, trained.history, trained.seconds + test.seconds,
                                 diagnostics))
    return out


def evaluate_setting(bench: Benchmark, cfg: ProtocolConfig, shots: int, device: torch.device,
                     log: Log = print, progress: Progress | None = None) -> SettingResult:
    """:func:`evaluate_settings` for a single shot count."""
    one = cfg.model_copy(update={"eval": cfg.eval.model_copy(update={"shots": [shots]})})
    return evaluate_settings(bench, one, device, log=log, progress=progress)[0]
