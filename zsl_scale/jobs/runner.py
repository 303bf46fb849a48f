"""Jobs: a YAML list of pipeline stages run in order, each skipped when its outputs are up to date.

A job (``zsl-scale run JOB.yaml``) names stages of the kinds splits → features → embeddings → train →
latents → score → methods → leaderboard, in that order (a job may leave kinds out or use one kind twice).
Each stage gets its own folder ``<workdir>/<stage name>/`` and, when it finishes, a record
``stage.json`` with its **stage hash** = sha256 of (kind, config, the hashes of every earlier stage).
Chaining the hashes means that a config change re-runs that stage and everything downstream, while an
unchanged prefix of the pipeline is skipped — the property that makes cluster jobs cheap to re-submit.

- record present, same hash, recorded outputs present → **skip**;
- no record but a folder with the same pending hash → **resume** (the stage's own resume logic);
- a different hash → the folder is cleared and the stage runs from scratch.

Stage kinds are dispatched through :mod:`zsl_scale.jobs.registry`; the built-in runners live in
:mod:`zsl_scale.jobs.stages`, and plug-ins register with :func:`register_stage`.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zsl_scale.core import (
    ConfigError,
    DataError,
    atomic_write_json,
    output_lock,
    sha256_file,
    sha256_json,
    working_directory,
)
from zsl_scale.jobs import stages as _builtin_stages  # noqa: F401 - registers the built-in stage runners
from zsl_scale.jobs.registry import (
    JOB_SCHEMA,
    PENDING,
    RECORD,
    JobSpec,
    StageContext,
    StageSpec,
    stage_runner,
)
from zsl_scale.jobs.validate import validate_job


def stage_hash(spec: StageSpec, upstream_hashes: list[str]) -> str:
    """Hash of what determines a stage's outputs: its kind, config, and every earlier stage's hash."""
    return sha256_json({"job_schema": JOB_SCHEMA, "kind": spec.kind, "config": spec.config,
                        "inputs": upstream_hashes})


@dataclass
class StagePlan:
    name: str
    kind: str
    hash: str
    action: str  # skip | run | resume | rerun
    reason: str


@dataclass
class JobOutcome:
    plans: list[StagePlan] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def workdir_of(job: JobSpec, job_dir: Path, override: str | Path | None = None) -> Path:
    """The work folder: ``override`` (``--workdir``: relative to the current directory, like every other
    path option), else the job's ``workdir`` (relative to the job file's folder, as every path in a job)."""
    if override:
        return Path(override).expanduser().absolute()
    wd = Path(job.workdir.format(name=job.name)).expanduser()
    return wd if wd.is_absolute() else job_dir / wd


def _decide(out_dir: Path, h: str, force: bool) -> tuple[str, str]:
    rec_path = out_dir / RECORD
    if force:
        fresh = not out_dir.exists() or not any(out_dir.iterdir())
        return ("run", "never ran") if fresh else ("rerun", "forced")
    if rec_path.exists():
        rec = _read_json(rec_path)
        if rec.get("hash") != h:
            return "rerun", "config or upstream changed"
        missing = [p for p in rec.get("outputs", {}) if not (out_dir / p).exists()]
        if missing:
            return "rerun", f"output {missing[0]} is missing"
        return "skip", "up to date"
    pending = out_dir / PENDING
    if pending.exists() and _read_json(pending).get("hash") == h:
        return "resume", "interrupted earlier with the same config"
    if out_dir.exists() and any(out_dir.iterdir()):
        return "rerun", "folder holds outputs of another config"
    return "run", "never ran"


def _read_json(path: Path) -> dict[str, Any]:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read stage record {path}: {exc}") from exc


def run_job(job: JobSpec, job_dir: Path, workdir: str | Path | None = None, force: tuple[str, ...] = (),
            dry_run: bool = False, log: Callable[[str], None] = print) -> JobOutcome:
    """Run (or, with ``dry_run``, plan) every stage of ``job`` in order, skipping up-to-date ones.

    The whole job is validated first (:func:`zsl_scale.jobs.validate.validate_job`: kinds, order, settings,
    references, input paths), so a job that cannot finish fails before its first stage; ``dry_run`` runs
    exactly that validation and then only plans.
    """
    unknown = [f for f in force if f not in {s.name for s in job.stages}]
    if unknown:
        raise ConfigError(f"--force names no stage of job {job.name!r}: {unknown[0]!r}")
    root = workdir_of(job, job_dir, workdir)
    validate_job(job, job_dir, root)
    if dry_run:
        return _run_stages(job, root, job_dir, force, True, log)
    # one writer per work folder (checked before any stage runs); the stages run from it, not from a working
    # folder that may vanish under a `ray job submit` driver (core.working_directory)
    with output_lock(root, "work folder"), working_directory(root):
        return _run_stages(job, root, job_dir, force, False, log)


def _run_stages(job: JobSpec, root: Path, job_dir: Path, force: tuple[str, ...], dry_run: bool,
                log: Callable[[str], None]) -> JobOutcome:
    outcome = JobOutcome()
    upstream: dict[str, dict[str, Any]] = {}
    hashes: list[str] = []
    rerun_downstream = False
    for spec in job.stages:
        out_dir = root / spec.name
        h = stage_hash(spec, hashes)
        action, reason = _decide(out_dir, h, spec.name in force or rerun_downstream)
        if rerun_downstream and spec.name not in force and action == "rerun":
            reason = "an upstream stage re-ran"
        plan = StagePlan(spec.name, spec.kind, h, action, reason)
        outcome.plans.append(plan)
        log(f"[{spec.name}] {action}: {reason} (hash {h[:12]})")
        if action != "skip":
            rerun_downstream = rerun_downstream or action in ("rerun", "run", "resume")
            if not dry_run:
                outcome.seconds[spec.name] = _execute(job, spec, out_dir, job_dir, h, hashes, upstream, action)
        if out_dir.joinpath(RECORD).exists():
            upstream[spec.name] = _read_json(out_dir / RECORD)
        else:  # dry run of a stage that never ran: later stages see its planned folder
            upstream[spec.name] = {"name": spec.name, "kind": spec.kind, "hash": h, "out_dir": str(out_dir),
                                   "outputs": {}}
        hashes.append(h)
    return outcome


def _execute(job: JobSpec, spec: StageSpec, out_dir: Path, job_dir: Path, h: str, hashes: list[str],
             upstream: dict[str, dict[str, Any]], action: str) -> float:
    runner = stage_runner(spec.kind)
    if action == "rerun" and out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / PENDING, {"hash": h, "kind": spec.kind})
    t0 = time.perf_counter()
    outputs = runner(StageContext(job, spec, out_dir, job_dir, dict(upstream))) or []
    seconds = time.perf_counter() - t0
    recorded = {}
    for p in outputs:
        p = Path(p)
        if not p.exists():
            raise DataError(f"stage {spec.name!r} reported output {p}, which does not exist")
        rel = p.resolve().relative_to(out_dir.resolve()) if p.resolve().is_relative_to(out_dir.resolve()) else p
        recorded[str(rel)] = sha256_file(p) if p.is_file() else "dir"
    from zsl_scale.core import capture

    atomic_write_json(out_dir / RECORD, {
        "name": spec.name, "kind": spec.kind, "hash": h, "config": spec.config, "inputs": hashes,
        "out_dir": str(out_dir), "outputs": recorded, "seconds": round(seconds, 3),
        "provenance": capture("cpu", full=False)})
    (out_dir / PENDING).unlink(missing_ok=True)
    return seconds
