"""The one results builder: every path that writes a results file makes its record here.

Each provenance field has one definition, so the same key means the same thing in every results file:

- ``config_sha256``: sha256 of ``config`` as recorded (:func:`zsl_scale.core.sha256_json`).
- ``provenance``: :func:`zsl_scale.core.capture` on the device that computed the numbers (``full=False``
  leaves out the torch environment, for the job stages whose process did not train), plus what the caller
  adds (a method plug-in's origin).
- ``manifests["benchmark"]``: sha256 of a small benchmark's file hashes (:func:`benchmark_manifest`).
- ``manifests["job"]``: the **job chain** (:func:`job_chain_sha256`), in every results file a job stage writes:
  sha256 of ``{stage name: {kind, hash}}`` over the stages before the writing one. A stage's hash
  (:func:`zsl_scale.jobs.runner.stage_hash`) already covers its config and the hashes of the stages before it,
  so the chain does not repeat configs; the writing stage's own settings are in the record itself (method,
  selection, notes, and an ImageNet stage's ``config``).
"""

from __future__ import annotations

from typing import Any

from zsl_scale.core import capture, sha256_json
from zsl_scale.results.schema import Metrics, ResultRecord, Selection


def benchmark_manifest(info: dict[str, Any]) -> str:
    """sha256 of a small benchmark's files (their ``files_sha256``; its whole ``info`` when it lists none)."""
    return sha256_json(info.get("files_sha256") or info)


def job_chain_sha256(upstream: dict[str, dict[str, Any]]) -> str:
    """``manifests["job"]``: sha256 of ``{name: {kind, hash}}`` of the stage records before the writing stage."""
    return sha256_json({name: {"kind": rec["kind"], "hash": rec["hash"]} for name, rec in upstream.items()})


def build_record(*, dataset: str, split: str, method: str, seed: int, selection: Selection, metrics: Metrics,
                 config: dict[str, Any], device: Any, setting: str = "gzsl", selection_source: str = "",
                 manifests: dict[str, str] | None = None, seeds: dict[str, int] | None = None,
                 full_provenance: bool = True, provenance: dict[str, Any] | None = None,
                 extra: dict[str, Any] | None = None) -> ResultRecord:
    """A results record, its provenance fields filled in one way (module doc).

    Args:
        device: the device the numbers were computed on (recorded in ``provenance``).
        full_provenance: record the torch environment too (:func:`zsl_scale.core.capture`).
        provenance: keys added after the captured ones (e.g. ``method_plugin``).
    """
    return ResultRecord(
        dataset=dataset, split=split, method=method, seed=seed, setting=setting, selection=selection,
        selection_source=selection_source, metrics=metrics, config=config, config_sha256=sha256_json(config),
        manifests=dict(manifests or {}), seeds=dict(seeds or {}),
        provenance={**capture(device, full=full_provenance), **(provenance or {})}, extra=dict(extra or {}))
