"""Run configuration: typed settings for every stage, YAML files and ``key=value`` overrides.

The first stage of the pipeline. A run's *resolved* configuration (defaults ← YAML file ← CLI
overrides) is saved beside its results and hashed into them, so any number can be traced back to the
exact settings that produced it. Defaults are the paper's hyper-parameters (docs/design.md §1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from zsl_scale.core.errors import ConfigError
from zsl_scale.core.io import read_text_file

Variant = Literal["cada", "ca", "da", "vae"]
Reparam = Literal["consistent", "authors"]


class Ramp(BaseModel):
    """A linear warm-up: 0 until ``start``, rising to ``factor`` at ``end``, then held.

    weight(e) = clamp((e − start) / (end − start) · factor, 0, factor), with ``e`` the 0-based epoch —
    the authors' code's formula.
    """

    model_config = ConfigDict(extra="forbid")

    start: int = Field(ge=0)
    end: int = Field(gt=0)
    factor: float = Field(ge=0)

    def at(self, epoch: float) -> float:
        if self.end <= self.start:
            return self.factor if epoch >= self.start else 0.0
        value = (epoch - self.start) / (self.end - self.start) * self.factor
        return min(max(value, 0.0), self.factor)

    def scaled(self, ratio: float) -> Ramp:
        """The same ramp on a schedule ``ratio`` times as long (used by shortened demo schedules)."""
        return Ramp(start=round(self.start * ratio), end=max(1, round(self.end * ratio)), factor=self.factor)


class TrainConfig(BaseModel):
    """VAE optimisation settings; defaults are the paper's (docs/design.md §1, the authors' code's values).

    β: 0 → 0.25 over epochs 0-93; γ (cross-reconstruction): 0 → 2.37 over epochs 21-75; δ (distribution
    alignment): 0 → 8.13 over epochs 6-22. ``variant`` switches the alignment terms off: ``ca`` has no
    DA term, ``da`` no CA term, ``vae`` neither. ``precision: bf16`` runs the encoder/decoder matrix
    products under bf16 autocast (fp32 weights, optimizer and loss sums; docs/cada.md "Precision"):
    faster where the CPU has bf16 units (AVX512-BF16, AMX) or on GPU tensor cores, emulated and slower elsewhere.
    """

    model_config = ConfigDict(extra="forbid")

    variant: Variant = "cada"
    epochs: int = Field(default=100, gt=0)
    batch_size: int = Field(default=50, gt=0)
    lr: float = Field(default=1.5e-4, gt=0)
    amsgrad: bool = True
    beta: Ramp = Ramp(start=0, end=93, factor=0.25)
    gamma: Ramp = Ramp(start=21, end=75, factor=2.37)
    delta: Ramp = Ramp(start=6, end=22, factor=8.13)
    precision: Literal["fp32", "bf16"] = "fp32"

    def shortened(self, epochs: int) -> TrainConfig:
        """A schedule of ``epochs`` epochs whose warm-ups keep the same shape relative to its length."""
        ratio = epochs / self.epochs
        return self.model_copy(
            update={
                "epochs": epochs,
                "beta": self.beta.scaled(ratio),
                "gamma": self.gamma.scaled(ratio),
                "delta": self.delta.scaled(ratio),
            }
        )


class ModelSettings(BaseModel):
    """Architecture choices; layer sizes come from :func:`zsl_scale.cada.model.paper_config`."""

    model_config = ConfigDict(extra="forbid")

    imagenet: bool = False  # the paper's ImageNet architecture: latent 128, two hidden layers
    reparam: Reparam = "consistent"  # "authors" reproduces the authors' σ = exp(logvar)
    init_gain: float = 0.5


class ClassifierConfig(BaseModel):
    """The final linear softmax classifier trained on sampled latents (the authors' settings).

    ``max_epochs`` bounds the epoch search on the validation split (``max_epochs_gfsl`` for GFSL, whose
    classifiers learn from the few shots' latents far longer: on Flowers their validation curves still rise
    at 80 epochs while GZSL's peak before 20); ``epochs`` fixes the number and skips the search (it must
    then come from a previous validation, never from the test set).
    """

    model_config = ConfigDict(extra="forbid")

    lr: float = Field(default=1e-3, gt=0)
    betas: tuple[float, float] = (0.5, 0.999)
    batch_size: int = Field(default=32, gt=0)
    max_epochs: int = Field(default=40, gt=0)
    max_epochs_gfsl: int = Field(default=40, gt=0)
    # Fixed epochs instead of a validation choice (results then say ``selection: fixed``), and why.
    epochs: int | None = Field(default=None, gt=0)  # an untrained classifier (0 or fewer) scores nothing
    epochs_source: str = ""
    seen_samples: int = Field(default=200, gt=0)  # latents per seen class, from image features
    unseen_samples: int = Field(default=400, gt=0)  # latents per unseen class, from class embeddings
    fewshot_samples: int = Field(default=200, gt=0)  # latents per unseen class, from its few shots (GFSL)


class EvalConfig(BaseModel):
    """The evaluation protocol.

    ``shots``: 0 is GZSL (and ZSL); k > 0 is GFSL with k images per unseen class moved into training.
    ``seen_val_fraction``: share of each training class held out as seen-validation images. The clean
    protocol drops xlsa17's ``test_seen`` rows from ``train``/``val`` first (they overlap).
    """

    model_config = ConfigDict(extra="forbid")

    shots: list[Annotated[int, Field(ge=0)]] = Field(default_factory=lambda: [0], min_length=1)
    seen_val_fraction: float = Field(default=0.2, gt=0, lt=1)
    validation: Literal["clean", "xlsa17"] = "clean"
    # Class-level cross-validation: fold 0 holds out the benchmark's `val` classes; folds 1.. hold out other,
    # disjoint sets of `train` classes of the same size. Epochs maximise the mean validation curve.
    val_folds: int = Field(default=1, ge=1)
    # Reuse classifier epochs chosen on validation by an earlier run (its results folder), e.g. seed 0's
    # for seeds 1-4: hyper-parameters are chosen once on validation, then applied to every seed.
    selection_from: str | None = None
    # Diagnosis only: also score the test phase after every classifier epoch (stored in results as
    # ``test_curve_never_used_for_selection``; nothing is chosen on it).
    test_curve: bool = False


class ProtocolConfig(BaseModel):
    """Everything a small-benchmark run needs; saved as ``config.yaml`` beside the results."""

    model_config = ConfigDict(extra="forbid")

    name: str = "run"
    benchmark: str = "flo"
    seed: int = 0
    device: str = "auto"
    model: ModelSettings = Field(default_factory=ModelSettings)
    train: TrainConfig = Field(default_factory=TrainConfig)
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` → (["a", "b", "c"], value parsed as YAML, so numbers and lists get their types)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.path=value")
    key, raw = text.split("=", 1)
    if not key.strip():
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: cannot parse value: {yaml_error_line(exc)}") from None
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides to a nested dict (returns a new dict)."""
    import copy

    out = copy.deepcopy(data)
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {part!r} is not a section")
        node[path[-1]] = value
    return out


def yaml_error_line(exc: yaml.YAMLError) -> str:
    """A YAML parser error as one line (problem, line, column) instead of its multi-line excerpt."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    context = getattr(exc, "context", None)
    return f"{problem}{where}" + (f" ({context})" if context else "")


def validation_message(exc: ValidationError) -> str:
    """The first error of a pydantic validation as ``a.b.c: message`` — one line for the user."""
    first = exc.errors()[0]
    return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"


SettingsT = TypeVar("SettingsT", bound=BaseModel)


def load_settings(cls: type[SettingsT], path: str | Path | None = None, overrides: list[str] | None = None,
                  **fields: Any) -> SettingsT:
    """Defaults ← YAML file ← keyword fields ← ``key=value`` overrides, validated as ``cls``.

    Shared by the small-benchmark :class:`ProtocolConfig` and the distributed job config, so that both read
    files and overrides, and report their errors, the same way.
    """
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            loaded = yaml.safe_load(read_text_file(p, "config file")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: invalid YAML: {yaml_error_line(exc)}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: the top level must be a mapping")
        data = loaded
    data.update({k: v for k, v in fields.items() if v is not None})
    data = apply_overrides(data, overrides or [])
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid config: {validation_message(exc)}") from exc


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, **fields: Any) -> ProtocolConfig:
    """A small-benchmark :class:`ProtocolConfig` (see :func:`load_settings`)."""
    return load_settings(ProtocolConfig, path, overrides, **fields)


def dump_config(cfg: BaseModel) -> str:
    """YAML text of a resolved config (stable key order)."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
