"""The results file: one JSON per (dataset, split, method, seed), with full provenance.

The leaderboard is built from these files only, so each one must say everything needed to trust and
reproduce its numbers (docs/design.md §2): metrics, the resolved config and its hash, the hashes of the
split and feature manifests, seeds, package versions, git commit, date and device.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from zsl_scale.core import DataError, atomic_write_json, sha256_json, validation_message

SCHEMA_VERSION = "1.1"  # 1.1: ``selection`` / ``selection_source`` (1.0 files are read, their selection inferred)

# How a result's epochs and hyper-parameters were chosen. Only ``validation`` is a clean number;
# ``fixed`` means set in advance (by a config, or another code's setting), ``test-oracle`` means the best
# test epoch (compatibility modes of codes that report it), ``published`` a number copied from a paper,
# ``external`` a prediction file made elsewhere (scored here, but how it was selected is unknown to us).
Selection = Literal["validation", "fixed", "test-oracle", "published", "external"]
SELECTIONS: tuple[str, ...] = ("validation", "fixed", "test-oracle", "published", "external")


def _infer_selection(data: dict[str, Any]) -> tuple[str, str]:
    """The selection of a schema-1.0 file, from what it recorded in ``extra['selection']``."""
    sel = (data.get("extra") or {}).get("selection") or {}
    source = str(sel.get("source", "")) if isinstance(sel, dict) else ""
    if source.startswith("validation"):
        return "validation", source
    if source:
        return "fixed", source
    return "fixed", "not recorded (schema 1.0 file)"


class Metrics(BaseModel):
    """Accuracies in percent (0-100), per-class mean top-1 as in the paper.

    ``S``/``U``/``H`` are the GZSL numbers; ``zsl`` is the unseen-only top-1; ``top_k`` maps
    ``"top5"`` etc. to per-class mean top-k; ``per_class`` maps class id (wnid or name) to top-1;
    ``per_group`` maps a WordNet group to its mean per-class top-1.
    """

    model_config = ConfigDict(extra="allow")

    S: float | None = None
    U: float | None = None
    H: float | None = None
    zsl: float | None = None
    top_k: dict[str, float] = Field(default_factory=dict)
    per_class: dict[str, float] = Field(default_factory=dict)
    per_group: dict[str, float] = Field(default_factory=dict)


class ResultRecord(BaseModel):
    """One results file. ``extra`` holds stage-specific details (selected epochs, protocol notes)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: str = SCHEMA_VERSION
    dataset: str
    split: str
    method: str
    seed: int
    setting: str = "gzsl"  # gzsl | zsl | gfsl-<k>
    selection: Selection
    selection_source: str = ""  # e.g. "validation (2 class folds)", "the authors' CUB setting"
    metrics: Metrics
    config: dict[str, Any]
    config_sha256: str = ""
    manifests: dict[str, str] = Field(default_factory=dict)  # name -> sha256 of split/feature manifests
    seeds: dict[str, int] = Field(default_factory=dict)
    provenance: dict[str, Any] = Field(default_factory=dict)
    extra: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _upgrade(cls, data: Any) -> Any:
        """Read schema-1.0 files, which lacked ``selection``: infer it from the epochs they recorded."""
        if isinstance(data, dict) and "selection" not in data and str(data.get("schema_version")) == "1.0":
            selection, source = _infer_selection(data)
            data = {**data, "selection": selection, "selection_source": source}
        return data

    def model_post_init(self, __context: Any) -> None:
        if not self.config_sha256:
            self.config_sha256 = sha256_json(self.config)

    def file_name(self) -> str:
        """Canonical file name, unique per (dataset, split, method, setting, seed)."""
        parts = [self.dataset, self.split, self.method, self.setting, f"seed{self.seed}"]
        return "__".join(p.replace("/", "-").replace(" ", "_") for p in parts) + ".json"


def write_result(record: ResultRecord, directory: str | Path) -> Path:
    """Write ``record`` atomically into ``directory`` under its canonical name; returns the path."""
    path = Path(directory) / record.file_name()
    atomic_write_json(path, record.model_dump(mode="json"))
    return path


def read_result(path: str | Path) -> ResultRecord:
    """Load and validate a results file; a malformed file is a :class:`DataError`, not a crash."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: invalid JSON, or bytes that are not UTF-8 text
        raise DataError(f"cannot read results file {path}: {' '.join(str(exc).split())[:200]}") from None
    try:
        return ResultRecord.model_validate(data)
    except ValidationError as exc:
        raise DataError(f"invalid results file {path}: {validation_message(exc)}") from exc
