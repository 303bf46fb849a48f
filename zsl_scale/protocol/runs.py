"""A small-benchmark run from config to results: evaluate every setting, write results and a report.

Output layout under ``runs/<name>/``::

    config.yaml                 the resolved configuration (defaults ← file ← overrides)
    results/<…>.json            one results file per (dataset, split, method, setting, seed)
    vae_history_<setting>.csv   per-epoch loss terms and warm-up weights of the final VAE
    report.md                   S/U/H table and the protocol that produced it
    vae/<phase>-<key>.pt        every phase's trained VAE: a re-run (after a kill, or with other
                                classifier settings) loads it instead of retraining

Every file is written atomically, and results only after their setting finished: an interrupted or
failed run never leaves a half-written or misleading result behind.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

from zsl_scale.core import (
    DataError,
    ProtocolConfig,
    atomic_write_json,
    atomic_write_text,
    claim_config,
    dump_config,
    resolve_device,
    sha256_file,
)
from zsl_scale.datasets import Benchmark, resolve_benchmark
from zsl_scale.protocol.evaluate import Progress, Selector, SettingResult, evaluate_settings, load_trained
from zsl_scale.results import Metrics, ResultRecord, benchmark_manifest, build_record, read_result, write_result

METHOD_NAMES = {"cada": "CADA-VAE", "ca": "CA-VAE", "da": "DA-VAE", "vae": "VAE"}
Log = Callable[[str], None]


def run_benchmark(cfg: ProtocolConfig, out_dir: str | Path, log: Log = print, bench: Benchmark | None = None,
                  progress: Progress | None = None, model_path: str | Path | None = None) -> list[ResultRecord]:
    """Run the protocol of :mod:`zsl_scale.protocol.evaluate` for each shot count; write results and a report."""
    out = Path(out_dir)
    device = resolve_device(cfg.device)
    bench = bench or resolve_benchmark(cfg.benchmark)
    log(f"benchmark {bench.name}: {bench.features.shape[0]} images, {bench.n_classes} classes, "
        f"features {bench.features.shape[1]}-d, class embeddings {bench.class_embeddings.shape[1]}-d; "
        f"device {device}")
    trained = load_trained(model_path, cfg, bench, device) if model_path else None
    selector = _selector(cfg, bench.name) if cfg.eval.selection_from else None
    claim_config(out, "config.yaml", dump_config(cfg))  # inputs are valid: only now touch the folder
    atomic_write_text(out / "config.yaml", dump_config(cfg))
    records: list[ResultRecord] = []
    method = METHOD_NAMES[cfg.train.variant]

    def save_selection(chosen: dict) -> None:
        picked = {k: {f: v[f] for f in ("gzsl_epochs", "zsl_epochs", "val_H", "val_zsl", "val_folds")}
                  for k, v in chosen.items()}
        atomic_write_json(out / "selection.json", {"dataset": bench.name, "method": method, "seed": cfg.seed,
                                                   "protocol": cfg.eval.validation, "settings": picked})

    for res in evaluate_settings(bench, cfg, device, log=log, progress=progress, selector=selector,
                                 on_selection=save_selection, trained_test=trained, cache=out / "vae"):
        record = _record(cfg, bench, res, device)
        if model_path:
            record.extra["vae_checkpoint"] = {"path": str(model_path), "sha256": sha256_file(model_path)}
        path = write_result(record, out / "results")
        atomic_write_text(out / f"vae_history_{res.setting}.csv", _history_csv(res.vae_history))
        m = record.metrics
        log(f"[{res.setting}] S {m.S:.1f}  U {m.U:.1f}  H {m.H:.1f}  ZSL {m.zsl:.1f}  → {path}")
        records.append(record)
    atomic_write_text(out / "report.md", render_report(cfg, records))
    return records


def _selector(cfg: ProtocolConfig, dataset: str) -> Selector:
    """Classifier epochs chosen on validation by an earlier run of the same method and protocol.

    Reads the run's ``selection.json`` (written right after its validation phase) or, failing that, the
    selections recorded in its results files.
    """
    folder = Path(cfg.eval.selection_from or "")
    method = METHOD_NAMES[cfg.train.variant]
    found: dict[str, dict] = {}
    if (folder / "selection.json").is_file():
        data = json.loads((folder / "selection.json").read_text())
        if (data.get("dataset"), data.get("method"), data.get("protocol")) != (dataset, method, cfg.eval.validation):
            raise DataError(f"eval.selection_from: {folder / 'selection.json'} is for {data.get('method')} on "
                            f"{data.get('dataset')} ({data.get('protocol')}), not {method} on {dataset}")
        for setting, sel in data["settings"].items():
            found[setting] = {**sel, "source": f"validation of {folder} (seed {data.get('seed')})"}
        return found.get
    results = folder / "results" if (folder / "results").is_dir() else folder
    if not results.is_dir():
        raise DataError(f"eval.selection_from: no selection.json or results folder at {folder}")
    for path in sorted(results.glob("*.json")):
        rec = read_result(path)
        sel = rec.extra.get("selection", {})
        same = (rec.dataset, rec.method) == (dataset, method)
        if same and sel.get("source") == "validation":
            found[rec.setting] = {"gzsl_epochs": sel["gzsl_epochs"], "zsl_epochs": sel["zsl_epochs"],
                                  "source": f"validation of {path}", "val_H": sel.get("val_H")}
    return found.get


def _record(cfg: ProtocolConfig, bench: Benchmark, res: SettingResult, device) -> ResultRecord:
    m = res.metrics
    return build_record(
        dataset=bench.name,
        split="xlsa17",
        method=METHOD_NAMES[cfg.train.variant],
        seed=cfg.seed,
        setting=res.setting,
        selection=selection_of(res.selection),
        selection_source=str(res.selection.get("source", "")),
        metrics=Metrics(S=m["S"], U=m["U"], H=m["H"], zsl=m["zsl"], per_class=m["per_class"]),
        config=cfg.model_dump(mode="json"),
        manifests={"benchmark": benchmark_manifest(bench.info)},  # bytes of every file
        seeds={"vae": cfg.seed, "sampling": cfg.seed + 1, "classifier": cfg.seed + 2, "zsl_classifier": cfg.seed + 3},
        device=device,
        extra={"shots": res.shots, "selection": res.selection, "seconds": round(res.seconds, 1),
               "vae_epochs": cfg.train.epochs, "final_vae_loss": res.vae_history[-1]["loss"], **res.diagnostics},
    )


def selection_of(sel: dict) -> str:
    """``validation`` when the classifier epochs were chosen on a validation split (this run's or another
    seed's), else ``fixed`` (set in advance by a config or a preset)."""
    return "validation" if str(sel.get("source", "")).startswith("validation") else "fixed"


def _history_csv(history: list[dict[str, float]]) -> str:
    buf = io.StringIO()
    if history:
        writer = csv.DictWriter(buf, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    return buf.getvalue()


def _epochs_sentence(cfg: ProtocolConfig) -> str:
    if cfg.classifier.epochs is not None:
        why = cfg.classifier.epochs_source or "by the config"
        return (f"Classifier epochs **fixed** at {cfg.classifier.epochs} ({why}), not chosen on this benchmark's "
                "validation split: `selection: fixed`.")
    return (f"Classifier epochs chosen on the validation split (protocol `{cfg.eval.validation}`), never on test: "
            "`selection: validation`.")


def render_report(cfg: ProtocolConfig, records: list[ResultRecord], note: str = "") -> str:
    """Markdown report of one run: the S/U/H table, chosen epochs, and the protocol in words."""
    lines = [f"# {cfg.name}: {METHOD_NAMES[cfg.train.variant]} on {cfg.benchmark}", ""]
    if note:
        lines += [f"> {note}", ""]
    lines += ["| setting | S | U | H | ZSL | classifier epochs (GZSL/ZSL) | selection | seed |",
              "|---|---:|---:|---:|---:|---|---|---:|"]
    for r in records:
        sel = r.extra.get("selection", {})
        m = r.metrics
        lines.append(f"| {r.setting} | {m.S:.1f} | {m.U:.1f} | {m.H:.1f} | {m.zsl:.1f} | "
                     f"{sel.get('gzsl_epochs')}/{sel.get('zsl_epochs')} | {r.selection} | {r.seed} |")
    first = records[0] if records else None
    lines += [
        "",
        "S, U: per-class mean top-1 (%) on test_seen / test_unseen over the seen ∪ unseen label space; "
        "H = 2SU/(S+U); ZSL: per-class mean top-1 over unseen classes only.",
        f"VAE: {cfg.train.epochs} epochs, batch {cfg.train.batch_size}, Adam lr {cfg.train.lr} (amsgrad), "
        f"reparametrisation `{cfg.model.reparam}`. {_epochs_sentence(cfg)} "
        "Min-max scaling fit on training images only.",
    ]
    if first is not None:
        lines += ["", f"Provenance: git `{first.provenance.get('git_commit')}`, {first.provenance.get('device')}, "
                      f"{first.provenance.get('date')}; config sha256 `{first.config_sha256[:12]}`."]
    return "\n".join(lines) + "\n"
