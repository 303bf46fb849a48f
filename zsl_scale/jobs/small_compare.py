"""One protocol, two engines: the reference path's numbers on a finished small-dataset job's own data.

:func:`reference_metrics` runs :func:`zsl_scale.protocol.evaluate_settings` — the code behind ``zsl-scale
evaluate`` — on exactly the job's images (its extracted features, its split, its ``att`` embeddings), with
the job's resolved protocol config, seed and the classifier epochs its validation stage chose. The only
differences left to the comparison are the engines themselves (VAE trainer, latent sampling, classifier
loop, scorer); :func:`compare` reports both sides and their difference.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zsl_scale.core import DataError

METRICS = ("S", "U", "H", "zsl")


def stage_dirs(workdir: str | Path) -> dict[str, Path]:
    """Folder of each finished stage of a job's work folder, by kind (the last stage of each kind)."""
    out: dict[str, Path] = {}
    for rec_path in sorted(Path(workdir).glob("*/stage.json")):
        rec = json.loads(rec_path.read_text())
        out[rec["kind"]] = rec_path.parent
    return out


def scale_metrics(workdir: str | Path) -> dict[str, float]:
    """S, U, H, ZSL (percent) of the job's score stage."""
    dirs = stage_dirs(workdir)
    if "score" not in dirs:
        raise DataError(f"{workdir}: the job has no finished score stage")
    files = sorted((dirs["score"] / "results").glob("*.json"))
    if not files:
        raise DataError(f"{dirs['score']}/results holds no results file")
    m = json.loads(files[0].read_text())["metrics"]
    return {k: float(m[k]) for k in METRICS}


def reference_metrics(workdir: str | Path, device: str = "cpu") -> dict[str, float]:
    """S, U, H, ZSL (percent) of the reference protocol on the job's data, settings, seed and chosen epochs."""
    from zsl_scale.core import ProtocolConfig, resolve_device
    from zsl_scale.jobs.small import job_benchmark
    from zsl_scale.protocol import evaluate_settings

    dirs = stage_dirs(workdir)
    missing = [k for k in ("splits", "features", "embeddings", "validation") if k not in dirs]
    if missing:
        raise DataError(f"{workdir}: no finished {missing[0]} stage (run the job first)")
    bench = job_benchmark(dirs["splits"], dirs["features"] / "shards", dirs["embeddings"] / "embeddings.parquet")
    cfg = ProtocolConfig.model_validate(json.loads((dirs["validation"] / "run_config.json").read_text()))
    sel = json.loads((dirs["validation"] / "selection.json").read_text())
    chosen = {"gzsl_epochs": sel["gzsl_epochs"], "zsl_epochs": sel["zsl_epochs"], "source": "validation (job)"}
    res = evaluate_settings(bench, cfg, resolve_device(device), log=lambda m: None, selector=lambda _s: chosen)[0]
    return {k: float(res.metrics[k]) for k in METRICS}


def compare(workdir: str | Path, device: str = "cpu") -> dict[str, Any]:
    """Both engines' metrics on one job and ``delta`` = scale − reference (percentage points)."""
    ref, scale = reference_metrics(workdir, device), scale_metrics(workdir)
    return {"reference": ref, "scale": scale, "delta": {k: scale[k] - ref[k] for k in METRICS}}
