"""Job files and the stage registry: what a job is, what a stage runner receives, and who runs each kind.

A job names stages of the kinds in :data:`PIPELINE_ORDER`; :func:`register_stage` maps a kind to its
runner. The built-in runners (:mod:`zsl_scale.jobs.stages`) and plug-ins register here; the runner
(:mod:`zsl_scale.jobs.runner`) imports the built-ins, so this module imports no stage.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from zsl_scale.core import ConfigError, atomic_write_json, read_text_file, yaml_error_line

# ``methods`` (the baselines, :mod:`zsl_scale.jobs.imagenet_methods`) sits after ``score``: stage hashes chain every
# earlier stage, so there a change of a baseline's hyper-parameters re-runs only it and the leaderboard, never the
# VAE (a CADA-VAE change re-runs the baselines, which take seconds).
PIPELINE_ORDER = ("splits", "features", "embeddings", "validation", "train", "latents", "score", "methods",
                  "leaderboard")
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

    @property
    def small_dataset(self) -> bool:
        """A job on a small dataset (an xlsa17 split): its splits stage names a ``benchmark``; else an
        ImageNet-style job (:mod:`zsl_scale.jobs.dataset`)."""
        return any(s.kind == "splits" and isinstance(s.config, dict) and "benchmark" in s.config for s in self.stages)


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

    def log(self, msg: str) -> None:
        """One line of this stage's progress on stdout, tagged with the stage's name (batch logs interleave stages)."""
        print(f"[{self.spec.name}] {msg}", flush=True)

    def path(self, value: str | Path) -> Path:
        """Resolve a config path: ``@stage/rel`` (an earlier stage's folder), ``shared:rel`` (the shared
        data folder, :func:`zsl_scale.core.paths.shared_data_dir`), absolute, or relative to the job file."""
        text = str(value)
        if text.startswith("shared:"):
            from zsl_scale.core import shared_data_dir

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

    def chain_config(self) -> dict[str, Any]:
        """The job's stages up to this one, as an ImageNet results file's ``config`` records them: each earlier
        stage's kind, config and hash, and this stage's kind and config."""
        stages = {name: {"kind": rec["kind"], "config": rec.get("config", {}), "hash": rec["hash"]}
                  for name, rec in self.upstream.items()}
        stages[self.spec.name] = {"kind": self.spec.kind, "config": self.spec.config}
        return {"job": self.job.name, "stages": stages}

    def finished_part(self, name: str) -> list[Path] | None:
        """The outputs :meth:`mark_part` recorded for part ``name`` of this stage, if they all still exist.

        A stage made of independent parts (one per method) resumes an interrupted run part by part.
        """
        done = self.out_dir / "done" / f"{name}.json"
        if not done.is_file():
            return None
        files = [self.out_dir / p for p in json.loads(done.read_text())["results"]]
        return files if all(p.is_file() for p in files) else None

    def mark_part(self, name: str, files: list[Path], seconds: float) -> None:
        """Record that part ``name`` finished with ``files`` (``done/<name>.json``, written atomically)."""
        atomic_write_json(self.out_dir / "done" / f"{name}.json", {
            "method": name, "results": [str(p.relative_to(self.out_dir)) for p in files], "seconds": round(seconds, 2)})


StageRunner = Callable[[StageContext], list[Path] | None]
_REGISTRY: dict[str, StageRunner] = {}  # plug-ins (and tests): looked up first
_BUILTIN: dict[str, StageRunner] = {}  # zsl_scale.jobs.stages


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
    known = {**_BUILTIN, **_REGISTRY}
    if kind not in known:
        close = difflib.get_close_matches(kind, list(known), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(known))}"
        raise ConfigError(f"unknown stage kind {kind!r}{hint}")
    return known[kind]


def is_builtin(kind: str) -> bool:
    """Whether ``kind`` runs the built-in runner (whose settings model :mod:`zsl_scale.jobs.settings` has),
    not a plug-in that registered the kind itself and reads its own config."""
    return kind in _BUILTIN and kind not in _REGISTRY


def load_job(path: str | Path) -> JobSpec:
    """Read and validate a job file; order of stage kinds must follow the pipeline."""
    path = Path(path)
    try:
        data = yaml.safe_load(read_text_file(path, "job file"))
    except OSError as exc:
        raise ConfigError(f"cannot read job file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"job file {path} is not valid YAML: {yaml_error_line(exc)}") from None
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
