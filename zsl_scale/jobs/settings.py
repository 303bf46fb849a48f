"""Typed stage settings: one pydantic model per stage kind (and per job mode), defaults in one place.

A job's YAML gives each stage a ``config`` mapping. Its keys, types, bounds and defaults live here, in one
model per kind — an ImageNet job and a small-benchmark job (a splits stage with ``benchmark``) read some
kinds differently, so those kinds have one model per mode. Every model forbids unknown keys and names the
closest known one (``did you mean``), so a typo cannot leave a default silently in place.

Two callers: :func:`zsl_scale.jobs.validate.validate_job` checks every stage of a job before its first
stage runs (and ``zsl-scale run --dry-run`` runs exactly that check), and each stage runner reads its
settings with :func:`settings_of`. The raw ``config`` mapping stays what the stage hash covers, so
adding a default here does not re-run finished stages.

Fields whose values are input paths carry ``json_schema_extra={"input": "file" | "dir" | "any"}``: the
validation checks that they exist (values starting with ``@`` name an earlier stage's folder instead).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
import typing
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from zsl_scale.core import ConfigError

RUNNERS = ("local", "spawn", "ray")
FORBID = ConfigDict(extra="forbid")


def _input(kind: Literal["file", "dir", "any"] = "any") -> dict[str, Any]:
    return {"json_schema_extra": {"input": kind}}


class Settings(BaseModel):
    """Base of every stage's settings: unknown keys are refused."""

    model_config = FORBID


class Holdout(Settings):
    """Seen classes held out as unseen (measured on real images): a seeded fraction of them."""

    seed: int = 0
    fraction: float = Field(0.1, gt=0, lt=1)


class SplitsSettings(Settings):
    """ImageNet ``splits``: the zero-shot splits to build and the seen label space."""

    splits: list[str] = Field(default_factory=lambda: ["2H"], min_length=1)
    seen: str = Field("1k", **_input("file"))  # "1k" or a wnid list file
    holdout: Holdout | None = None
    counts: str | None = Field(None, **_input("file"))
    wordnet: str | None = None
    xian_source: str | None = Field(None, **_input("dir"))
    universe: str | None = None  # a named class universe, or counts:<file> / features:<dir> (the job's copy)
    split_images: Literal["required", "distractors"] = "required"


class Subset(Settings):
    """A seeded class × image subset of a small benchmark (short runs, tests)."""

    seed: int = 0
    classes: int = Field(3, ge=1)
    per_class: int = Field(10, ge=1)


class SmallSplitsSettings(Settings):
    """Small-dataset ``splits``: an xlsa17 folder with its images in a tar (read in place)."""

    benchmark: str = Field(..., **_input("dir"))
    name: str | None = None
    tar: str = "jpg64.tar"
    member_dir: str = "jpg64"
    att_splits: str = "att_splits.mat"
    class_prefix: str = "class"
    subset: Subset | None = None


class EmbeddingsSettings(Settings):
    """ImageNet ``embeddings``: a text model embeds every class of the label space."""

    model: str = "default"
    model_id: str | None = None
    batch_size: int = Field(64, ge=1)
    device: str = "auto"
    cache: str | None = None
    wordnet: str | None = None


class SmallEmbeddingsSettings(Settings):
    """Small-dataset ``embeddings``: the benchmark's own ``att`` matrix (another file with ``att``)."""

    att: str | None = Field(None, **_input("file"))


class ValidationSettings(Settings):
    """``validation`` (small benchmarks): the protocol config whose classifier epochs it chooses."""

    config: str = "paper"  # a packaged config name (paper, demo) or a YAML path
    set: list[str] = Field(default_factory=list)
    seed: int = 0
    device: str = "auto"
    features: str = "features"  # the features stage's name

    @field_validator("set", mode="before")
    @classmethod
    def _strings(cls, value: Any) -> Any:
        return [str(v) for v in value] if isinstance(value, list) else value


class TrainSettings(Settings):
    """ImageNet ``train``: the distributed trainer under ``runner``; ``job`` holds DistJobConfig sections."""

    features: str = "features"
    runner: Literal["local", "spawn", "ray"] = "local"
    job: dict[str, Any] = Field(default_factory=dict)


class SmallTrainSettings(Settings):
    """Small-dataset ``train``: the validation stage's protocol settings, scaled out by ``scale``."""

    features: str = "features"
    runner: Literal["local", "spawn", "ray"] = "ray"
    scale: dict[str, Any] = Field(default_factory=dict)


class LatentsSettings(Settings):
    """ImageNet ``latents``: μ of the test images and the final classifier (its epochs fixed beforehand)."""

    test_features: str = "@features"
    classifier: dict[str, Any] = Field(default_factory=dict)
    epochs: int = Field(..., ge=1)
    seed: int = 0
    device: str = "auto"
    workers: int | None = Field(None, ge=1)
    encode_batch: int = Field(4096, ge=1)


class SmallLatentsSettings(Settings):
    """Small-dataset ``latents``: the classifiers for the epochs the validation stage chose."""

    features: str = "features"
    device: str = "auto"
    workers: int | None = Field(None, ge=1)
    encode_batch: int = Field(4096, ge=1)
    mode: str = "fixed"


class SmallScoreSettings(Settings):
    """Small-dataset ``score``: GZSL and ZSL with the chunked scorer."""

    method: str = "CADA-VAE"
    device: str = "auto"
    notes: str = ""


class MethodsSettings(Settings):
    """ImageNet ``methods``: baselines with hyper-parameters fixed in the job (no validation split)."""

    methods: dict[str, dict[str, Any] | None] = Field(default_factory=dict)  # checked by check_methods
    source: str | None = None
    features: str = "features"
    test_features: str = "@features"
    dataset: str | None = None
    splits: list[str] | None = None
    top_k: list[int] = Field(default_factory=lambda: [1, 5])
    device: str = "auto"
    batch_rows: int = Field(65536, ge=1)
    seed: int = 0
    notes: str = ""
    max_test_per_class: int | None = Field(None, ge=1)
    allow_pretraining_overlap: bool = False


class SmallMethodsSettings(Settings):
    """Small-dataset ``methods``: registry grids searched on the benchmark's validation split."""

    methods: list[str] | str = Field(default_factory=lambda: ["eszsl", "devise", "sje", "ale", "conse"])
    features: str = "features"
    device: str = "auto"
    notes: str = ""


class LeaderboardSettings(Settings):
    """``leaderboard``: this job's results plus any extra results folders."""

    results: list[str] = Field(default_factory=list, json_schema_extra={"input": "any"})


def _from_dataclass(name: str, cls: type, drop: tuple[str, ...], doc: str, **extra: Any) -> type[Settings]:
    """A settings model with the fields, types and defaults of dataclass ``cls`` (its defaults stay there)."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: (hints[f.name], f.default if f.default is not dataclasses.MISSING else None)
              for f in dataclasses.fields(cls) if f.name not in drop}
    return create_model(name, __base__=Settings, __doc__=doc, **fields, **extra)


@functools.cache
def features_model() -> type[Settings]:
    """``features``: ``source`` plus :class:`zsl_scale.features.ExtractOptions` (its defaults)."""
    from zsl_scale.features import ExtractOptions

    return _from_dataclass("FeaturesSettings", ExtractOptions, ("overwrite",),
                           "``features``: ``source`` (an image tree, tars or a ``<tar>::<member>`` list) and every "
                           ":class:`zsl_scale.features.ExtractOptions` field.",
                           source=(str, Field(..., json_schema_extra={"input": "any"})))


@functools.cache
def score_model() -> type[Settings]:
    """ImageNet ``score``: :class:`zsl_scale.scoring.ScoreSettings` (``dataset`` defaults to the job name)."""
    from zsl_scale.scoring import ScoreSettings

    model = _from_dataclass("ScoreSettings", ScoreSettings, ("dataset", "top_k"),
                            "ImageNet ``score``: :class:`zsl_scale.scoring.ScoreSettings` (``dataset``: the job name).",
                            dataset=(str | None, None),
                            top_k=(list[int], Field(default_factory=lambda: [1, 5])))
    return model


def settings_model(kind: str, benchmark: bool) -> type[Settings] | None:
    """The settings model of stage ``kind`` in an ImageNet (``benchmark`` False) or small-benchmark job;
    None for a plug-in kind (its runner checks its own config)."""
    both: dict[str, Any] = {"features": features_model, "validation": lambda: ValidationSettings,
                            "leaderboard": lambda: LeaderboardSettings}
    per_mode: dict[str, tuple[Any, Any]] = {
        "splits": (SplitsSettings, SmallSplitsSettings), "embeddings": (EmbeddingsSettings, SmallEmbeddingsSettings),
        "train": (TrainSettings, SmallTrainSettings), "latents": (LatentsSettings, SmallLatentsSettings),
        "score": (None, SmallScoreSettings), "methods": (MethodsSettings, SmallMethodsSettings)}
    if kind in both:
        return both[kind]()
    if kind == "score" and not benchmark:
        return score_model()
    if kind in per_mode:
        return per_mode[kind][1 if benchmark else 0]
    return None


HINTS = {("latents", "epochs"): "a benchmark job takes its classifier epochs from the validation stage"}


def parse_settings(kind: str, name: str, config: dict[str, Any], benchmark: bool) -> Any:
    """``config`` as its kind's settings model; one :class:`ConfigError` line naming the stage and key."""
    model = settings_model(kind, benchmark)
    if model is None:
        return config
    if not isinstance(config, dict):
        raise ConfigError(f"stage {name!r}: config must be a mapping, got {type(config).__name__}")
    try:
        return model.model_validate(config)
    except ValidationError as exc:
        errors = exc.errors()  # a misspelt key first: its "did you mean" explains the missing one too
        err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            key = str(err["loc"][-1])
            known = list(_fields_at(model, err["loc"][:-1]))
            close = difflib.get_close_matches(key, known, n=1)
            hint = HINTS.get((kind, key)) if benchmark else None
            why = f"; {hint}" if hint else f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"stage {name!r} ({kind}): unknown setting {loc!r}{why} "
                              f"(known: {', '.join(known)})") from None
        raise ConfigError(f"stage {name!r} ({kind}): {loc or 'config'}: {err['msg']} "
                          f"(got {_short(err.get('input'))})") from None


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> dict[str, Any]:
    """The field names of the (nested) model at ``loc``."""
    fields = model.model_fields
    for part in loc:
        info = fields.get(str(part))
        nested = next((a for a in typing.get_args(info.annotation) or (info.annotation,)
                       if isinstance(a, type) and issubclass(a, BaseModel)), None) if info else None
        if nested is None:
            break
        fields = nested.model_fields
    return dict(fields)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def settings_of(ctx: Any) -> Any:
    """The settings of the stage ``ctx`` runs (a model instance; the config mapping for a plug-in kind)."""
    return parse_settings(ctx.spec.kind, ctx.spec.name, ctx.config, ctx.job.small_dataset)


def input_fields(settings: BaseModel) -> list[tuple[str, str, Any]]:
    """``(key, kind, value)`` of every input-path field set in ``settings`` (nested lists flattened)."""
    out = []
    for key, info in type(settings).model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        value = getattr(settings, key)
        if "input" in extra and value is not None:
            for v in value if isinstance(value, list) else [value]:
                out.append((key, str(extra["input"]), v))
    return out


def _type_name(annotation: Any) -> str:
    """A field's type as a reader writes it (``int | None``, ``list[str]``, ``Holdout``), ``|`` escaped for a table."""
    if isinstance(annotation, type) and not typing.get_args(annotation):
        text = annotation.__name__
    else:
        text = str(annotation).replace("typing.", "").replace("NoneType", "None").replace(f"{__name__}.", "")
    return text.replace("|", "\\|")


def _default(info: Any) -> str:
    if info.is_required():
        return "required"
    value = info.default_factory() if info.default_factory is not None else info.default
    return f"`{value.model_dump() if isinstance(value, BaseModel) else value!r}`"


SETTINGS_BEGIN = "<!-- settings reference: generated by zsl_scale.jobs.settings.settings_reference -->"
SETTINGS_END = "<!-- end of settings reference -->"


def settings_reference() -> str:
    """Markdown tables of every built-in stage kind's settings (both job kinds), generated from the models
    above: docs/jobs.md holds them between :data:`SETTINGS_BEGIN` and :data:`SETTINGS_END` (a test keeps
    the two equal; :func:`update_settings_doc` rewrites the block)."""
    kinds = ("splits", "features", "embeddings", "validation", "train", "latents", "score", "methods", "leaderboard")
    out = []
    for small in (False, True):
        out.append(f"#### {'Small-dataset job (a splits stage with `benchmark`)' if small else 'ImageNet-style job'}\n")
        for kind in kinds:
            model = settings_model(kind, small)
            if model is None or (kind == "validation" and not small):
                continue
            doc = re.sub(r":\w+:`", "`", " ".join((model.__doc__ or "").split())).replace("``", "`")
            out.append(f"**{kind}** — {doc}\n\n| key | type | default |\n|---|---|---|")
            for key, info in model.model_fields.items():
                out.append(f"| `{key}` | `{_type_name(info.annotation)}` | {_default(info)} |")
                args = typing.get_args(info.annotation)
                for sub in [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]:  # holdout.seed, …
                    out += [f"| `{key}.{k}` | `{_type_name(i.annotation)}` | {_default(i)} |"
                            for k, i in sub.model_fields.items()]
            out.append("")
    return "\n".join(out)


def update_settings_doc(path: str) -> None:
    """Rewrite the generated block of ``path`` (docs/jobs.md) from the models:
    ``python -c "from zsl_scale.jobs.settings import update_settings_doc; update_settings_doc('docs/jobs.md')"``."""
    from pathlib import Path

    text = Path(path).read_text(encoding="utf-8")
    head, _, rest = text.partition(SETTINGS_BEGIN)
    _, _, tail = rest.partition(SETTINGS_END)
    Path(path).write_text(f"{head}{SETTINGS_BEGIN}\n{settings_reference()}\n{SETTINGS_END}{tail}", encoding="utf-8")
