"""Jobs: a YAML list of pipeline stages run in order, each skipped when its outputs are up to date.

A job (``zsl-scale run JOB.yaml``) names stages of the kinds splits → features → embeddings → train →
latents → score → leaderboard, in that order (a job may leave kinds out or use one kind twice).
Each stage gets its own folder ``<workdir>/<stage name>/`` and, when it finishes, a record
``stage.json`` with its **stage hash** = sha256 of (kind, config, the hashes of every earlier stage).
Chaining the hashes means that a config change re-runs that stage and everything downstream, while an
unchanged prefix of the pipeline is skipped — the property that makes cluster jobs cheap to re-submit.

- record present, same hash, recorded outputs present → **skip**;
- no record but a folder with the same pending hash → **resume** (the stage's own resume logic);
- a different hash → the folder is cleared and the stage runs from scratch.

Stage kinds are dispatched through a registry (:func:`register_stage`) so that each stage module
plugs in its own runner (see :mod:`zsl_scale.job_stages`) without this module importing them.
"""

from __future__ import annotations

import difflib
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from zsl_scale.errors import ConfigError, DataError
from zsl_scale.io import atomic_write_json, sha256_file, sha256_json

PIPELINE_ORDER = ("splits", "features", "embeddings", "train", "latents", "score", "leaderboard")
RECORD = "stage.json"
PENDING = ".pending.json"
JOB_SCHEMA = "1.0"


class StageSpec(BaseModel):
    """One stage of a job: ``name`` (its folder), ``kind`` (registry key, default = name), ``config``."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: str = ""
    config: dict[str, Any] = Field(default_factory=dict)

    def model_post_init(self, __context: Any) -> None:
        if not self.kind:
            self.kind = self.name


class JobSpec(BaseModel):
    """A job file: a name, a work folder (relative to the job file unless absolute) and its stages."""

    model_config = ConfigDict(extra="forbid")

    name: str
    workdir: str = "runs/{name}"
    description: str = ""
    stages: list[StageSpec]


@dataclass
class StageContext:
    """What a stage runner gets: its config, its folder, and the records of the stages before it."""

    job: JobSpec
    spec: StageSpec
    out_dir: Path
    job_dir: Path  # folder of the job file: relative paths in configs resolve against it
    upstream: dict[str, dict[str, Any]]  # stage name -> its stage.json record

    @property
    def config(self) -> dict[str, Any]:
        return self.spec.config

    def path(self, value: str | Path) -> Path:
        """Resolve a config path: ``@stage/rel`` (an earlier stage's folder), ``shared:rel`` (the shared
        data folder, :func:`zsl_scale.paths.shared_data_dir`), absolute, or relative to the job file."""
        text = str(value)
        if text.startswith("shared:"):
            from zsl_scale.paths import shared_data_dir

            return shared_data_dir() / text.removeprefix("shared:")
        if text.startswith("@"):
            name, _, rel = text[1:].partition("/")
            if name not in self.upstream:
                raise ConfigError(f"stage {self.spec.name!r} refers to {text!r}, "
                                  f"but no earlier stage is named {name!r}")
            return Path(self.upstream[name]["out_dir"]) / rel
        path = Path(text).expanduser()
        return path if path.is_absolute() else self.job_dir / path

    def upstream_of_kind(self, kind: str) -> dict[str, Any]:
        """The record of the latest earlier stage of ``kind`` (a :class:`ConfigError` when there is none)."""
        for rec in reversed(list(self.upstream.values())):
            if rec["kind"] == kind:
                return rec
        raise ConfigError(f"stage {self.spec.name!r} needs an earlier {kind!r} stage in job {self.job.name!r}")


StageRunner = Callable[[StageContext], list[Path] | None]
_REGISTRY: dict[str, StageRunner] = {}  # plug-ins (and tests): looked up first
_BUILTIN: dict[str, StageRunner] = {}  # zsl_scale.job_stages


def register_stage(kind: str, builtin: bool = False) -> Callable[[StageRunner], StageRunner]:
    """Decorator: make ``fn(ctx) -> [output paths]`` the runner of stage ``kind``.

    A plug-in registration overrides the built-in runner of the same kind.
    """

    def deco(fn: StageRunner) -> StageRunner:
        (_BUILTIN if builtin else _REGISTRY)[kind] = fn
        return fn

    return deco


def stage_runner(kind: str) -> StageRunner:
    """The runner of ``kind``; unknown kinds get a "did you mean" hint."""
    import zsl_scale.job_stages  # noqa: F401 - registers the built-in stages (once)

    known = {**_BUILTIN, **_REGISTRY}
    if kind not in known:
        close = difflib.get_close_matches(kind, list(known), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(known))}"
        raise ConfigError(f"unknown stage kind {kind!r}{hint}")
    return known[kind]


def load_job(path: str | Path) -> JobSpec:
    """Read and validate a job file; order of stage kinds must follow the pipeline."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read job file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"job file {path} is not valid YAML: {exc}") from exc
    try:
        job = JobSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"job file {path}: {loc}: {first['msg']}") from exc
    check_order(job)
    return job


def check_order(job: JobSpec) -> None:
    """Stage names unique; kinds known to the pipeline and in pipeline order (data flows one way)."""
    names = [s.name for s in job.stages]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise ConfigError(f"job {job.name!r} has two stages named {dup!r}")
    last = -1
    for s in job.stages:
        if s.kind not in PIPELINE_ORDER:
            stage_runner(s.kind)  # raises with a hint (or accepts a registered custom kind)
            continue
        pos = PIPELINE_ORDER.index(s.kind)
        if pos < last:
            raise ConfigError(f"stage {s.name!r} ({s.kind}) comes after a {PIPELINE_ORDER[last]} stage; "
                              f"order is {' → '.join(PIPELINE_ORDER)}")
        last = pos


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
    wd = Path(override) if override else Path(job.workdir.format(name=job.name)).expanduser()
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
    """Run (or, with ``dry_run``, plan) every stage of ``job`` in order, skipping up-to-date ones."""
    check_order(job)
    unknown = [f for f in force if f not in {s.name for s in job.stages}]
    if unknown:
        raise ConfigError(f"--force names no stage of job {job.name!r}: {unknown[0]!r}")
    root = workdir_of(job, job_dir, workdir)
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
            if dry_run:
                runner = stage_runner(spec.kind)  # still validate the kind
                del runner
            else:
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
    from zsl_scale.provenance import capture

    atomic_write_json(out_dir / RECORD, {
        "name": spec.name, "kind": spec.kind, "hash": h, "config": spec.config, "inputs": hashes,
        "out_dir": str(out_dir), "outputs": recorded, "seconds": round(seconds, 3),
        "provenance": capture("cpu", full=False)})
    (out_dir / PENDING).unlink(missing_ok=True)
    return seconds
