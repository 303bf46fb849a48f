"""A job checked whole before its first stage runs (and all that ``zsl-scale run --dry-run`` checks).

A job that can only fail at its fifth stage would otherwise run four (hours of extraction on a real job)
and leave half-built folders behind. Everything that can be known from the job file is checked up front:

- stage names unique, kinds known and in pipeline order (:func:`zsl_scale.jobs.registry.check_order`);
- every stage's settings against its kind's model (:mod:`zsl_scale.jobs.settings`: keys, types, bounds);
- every earlier stage a stage reads from exists (``latents`` needs a ``train`` before it, …);
- every ``@stage/…`` reference, and every setting that names a stage, names an earlier stage;
- every input path a setting names (not ``@…``) exists; a small benchmark's tar and split file too;
- the work folder is not a file.

What cannot be known before a stage runs (the contents of a file, a stage's own outputs) is checked by
the stage, as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from zsl_scale.core import ConfigError, DataError
from zsl_scale.jobs.registry import JobSpec, StageSpec, check_order, is_builtin
from zsl_scale.jobs.settings import input_fields, parse_settings

# The earlier stage kinds each kind reads from, per job mode (ImageNet, small benchmark).
NEEDS: dict[bool, dict[str, tuple[str, ...]]] = {
    False: {"embeddings": ("splits",), "train": ("splits", "embeddings"),
            "latents": ("splits", "embeddings", "train"), "score": ("splits", "embeddings", "latents"),
            "methods": ("splits", "embeddings")},
    True: {"embeddings": ("splits",), "validation": ("splits", "embeddings"),
           "train": ("embeddings", "validation"), "latents": ("splits", "embeddings", "validation", "train"),
           "score": ("splits", "validation", "latents"), "methods": ("splits", "embeddings", "validation")},
}
# Settings whose value is the name of an earlier stage of a kind (default "features").
STAGE_NAME_KEYS = {"features": "features"}


def validate_job(job: JobSpec, job_dir: Path, workdir: Path | None = None) -> dict[str, Any]:
    """Check ``job`` whole (see module doc); returns each stage's parsed settings by stage name.

    Raises:
        ConfigError: a bad kind, order, setting, reference or missing earlier stage.
        DataError: an input path that does not exist, or a work folder that is a file.
    """
    check_order(job)
    if workdir is not None and workdir.exists() and not workdir.is_dir():
        raise DataError(f"work folder {workdir} is a file, not a folder")
    benchmark = job.small_dataset
    if not benchmark and any(s.kind == "validation" for s in job.stages):
        stage = next(s for s in job.stages if s.kind == "validation")
        raise ConfigError(f"stage {stage.name!r}: a validation stage needs a benchmark splits stage "
                          "(splits config with 'benchmark')")
    earlier: dict[str, str] = {}  # stage name -> kind
    parsed: dict[str, Any] = {}
    for spec in job.stages:
        _check_references(spec, earlier)
        if not is_builtin(spec.kind):  # a plug-in runner checks its own config
            earlier[spec.name] = spec.kind
            parsed[spec.name] = spec.config
            continue
        settings = parse_settings(spec.kind, spec.name, spec.config, benchmark)
        for kind in NEEDS[benchmark].get(spec.kind, ()):
            if kind not in earlier.values():
                raise ConfigError(f"stage {spec.name!r} ({spec.kind}) needs an earlier {kind!r} stage in job "
                                  f"{job.name!r}")
        _check_nested(spec, settings, benchmark)
        if isinstance(settings, BaseModel):
            for key, kind in STAGE_NAME_KEYS.items():
                value = getattr(settings, key, None)
                if value is not None and earlier.get(value) != kind and _reads_stage(spec, benchmark):
                    raise ConfigError(f"stage {spec.name!r}: {key}: {value!r} is not an earlier {kind} stage "
                                      f"(earlier {kind} stages: {_names(earlier, kind)})")
            _check_inputs(spec, settings, job_dir)
        if spec.kind == "splits" and benchmark:
            _check_benchmark_files(spec, settings, job_dir)
        if spec.kind == "validation":
            _check_protocol_config(spec, settings, job_dir)
        earlier[spec.name] = spec.kind
        parsed[spec.name] = settings
    return parsed


def _check_nested(spec: StageSpec, settings: Any, benchmark: bool) -> None:
    """Settings that are whole configs of another module: the trainer's job / scale sections, the
    classifier, the methods' fixed hyper-parameters (or names)."""
    from pydantic import ValidationError

    from zsl_scale.core import ClassifierConfig, validation_message
    from zsl_scale.distributed import DistJobConfig

    where = f"stage {spec.name!r} ({spec.kind})"
    try:
        if spec.kind == "train":
            job = {"scale": settings.scale} if benchmark else settings.job
            dist = DistJobConfig.model_validate({**job, "name": "vae", "data": {}})
            from zsl_scale.distributed import check_runner

            check_runner(settings.runner, dist.scale.workers, f"stage {spec.name!r}: runner")
        elif spec.kind == "latents" and not benchmark:
            ClassifierConfig.model_validate(settings.classifier)
    except ValidationError as exc:
        key = "scale" if benchmark else "job" if spec.kind == "train" else "classifier"
        raise ConfigError(f"{where}: {key}: {validation_message(exc)}") from None
    if spec.kind == "methods":
        from zsl_scale.jobs import imagenet_methods, small_methods

        if benchmark:
            small_methods.method_names(spec.name, settings.methods)
        else:
            imagenet_methods.check_methods(spec.name, settings.methods)


def _reads_stage(spec: StageSpec, benchmark: bool) -> bool:
    """Whether ``spec``'s ``features`` setting names a stage (the features stage's own settings do not)."""
    return spec.kind in ("train", "methods", "validation") or (spec.kind == "latents" and benchmark)


def _names(earlier: dict[str, str], kind: str) -> str:
    return ", ".join(n for n, k in earlier.items() if k == kind) or "none"


def _strings(value: Any) -> list[str]:
    """Every string inside a config value (mappings and lists walked)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


def _check_references(spec: StageSpec, earlier: dict[str, str]) -> None:
    """Every ``@stage/…`` string in the stage's config names an earlier stage."""
    for text in _strings(spec.config):
        if text.startswith("@"):
            name = text[1:].partition("/")[0]
            if name not in earlier:
                raise ConfigError(f"stage {spec.name!r} refers to {text!r}, but no earlier stage is named "
                                  f"{name!r} (earlier: {', '.join(earlier) or 'none'})")


def resolve_input(value: str, job_dir: Path) -> Path:
    """A config path as :meth:`zsl_scale.jobs.StageContext.path` resolves it (``@`` references excluded)."""
    if value.startswith("shared:"):
        from zsl_scale.core import shared_data_dir

        return shared_data_dir() / value.removeprefix("shared:")
    path = Path(value).expanduser()
    return path if path.is_absolute() else job_dir / path


def _check_inputs(spec: StageSpec, settings: Any, job_dir: Path) -> None:
    """Every input path a setting names exists (``@`` references are planned folders: checked above)."""
    for key, kind, value in input_fields(settings):
        value = str(value)
        if value.startswith("@") or (key == "seen" and value == "1k"):
            continue
        _must_exist(spec, key, resolve_input(value, job_dir), kind)


def _must_exist(spec: StageSpec, key: str, path: Path, kind: str = "any") -> None:
    if not path.exists():
        raise DataError(f"stage {spec.name!r}: {key}: {path} does not exist")
    if kind == "file" and not path.is_file():
        raise DataError(f"stage {spec.name!r}: {key}: {path} is a folder, not a file")
    if kind == "dir" and not path.is_dir():
        raise DataError(f"stage {spec.name!r}: {key}: {path} is a file, not a folder")


def _check_benchmark_files(spec: StageSpec, settings: Any, job_dir: Path) -> None:
    """A small benchmark's image tar and xlsa17 split file, inside its folder."""
    if str(settings.benchmark).startswith("@"):
        return
    root = resolve_input(str(settings.benchmark), job_dir)
    _must_exist(spec, "tar", root / settings.tar, "file")
    _must_exist(spec, "att_splits", root / settings.att_splits, "file")


def _check_protocol_config(spec: StageSpec, settings: Any, job_dir: Path) -> None:
    """The validation stage's protocol config: a packaged name or an existing YAML file, with valid overrides."""
    from zsl_scale.core import PACKAGE_DATA, load_config

    packaged = PACKAGE_DATA / "configs" / f"{settings.config}.yaml"
    path = packaged if packaged.is_file() else resolve_input(str(settings.config), job_dir)
    _must_exist(spec, "config", path, "file")
    cfg = load_config(path, list(settings.set), seed=settings.seed)
    if cfg.classifier.epochs is not None:
        raise ConfigError(f"stage {spec.name!r}: classifier.epochs is fixed in its config; a validation "
                          "stage chooses it (remove the setting)")
