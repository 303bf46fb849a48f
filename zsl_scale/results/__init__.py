"""The results schema: one JSON per (dataset, split, method, seed), with provenance.
The leaderboard reads only these."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zsl_scale.core import lazy_exports

_EXPORTS = {
    "SELECTIONS": "schema",
    "benchmark_manifest": "build",
    "build_record": "build",
    "job_chain_sha256": "build",
    "Selection": "schema",
    "Metrics": "schema",
    "ResultRecord": "schema",
    "read_result": "schema",
    "write_result": "schema",
}
__all__ = [
    "SELECTIONS",
    "Metrics",
    "ResultRecord",
    "Selection",
    "benchmark_manifest",
    "build_record",
    "job_chain_sha256",
    "read_result",
    "write_result",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # static analysers see the names; at run time they load on first use
    from zsl_scale.results.build import benchmark_manifest, build_record, job_chain_sha256
    from zsl_scale.results.schema import SELECTIONS, Metrics, ResultRecord, Selection, read_result, write_result
