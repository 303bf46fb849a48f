"""The results file: one JSON per (dataset, split, method, seed), with full provenance.

The leaderboard is built from these files only, so each one must say everything needed to trust and
reproduce its numbers (DESIGN.md §2): metrics, the resolved config and its hash, the hashes of the
split and feature manifests, seeds, package versions, git commit, date and device.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from zsl_scale.core import DataError, atomic_write_json, sha256_json, validation_message

SCHEMA_VERSION = "1.0"


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
    metrics: Metrics
    config: dict[str, Any]
    config_sha256: str = ""
    manifests: dict[str, str] = Field(default_factory=dict)  # name -> sha256 of split/feature manifests
    seeds: dict[str, int] = Field(default_factory=dict)
    provenance: dict[str, Any] = Field(default_factory=dict)
    extra: dict[str, Any] = Field(default_factory=dict)

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
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read results file {path}: {exc}") from exc
    try:
        return ResultRecord.model_validate(data)
    except ValidationError as exc:
        raise DataError(f"invalid results file {path}: {validation_message(exc)}") from exc
