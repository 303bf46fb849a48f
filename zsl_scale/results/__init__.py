"""The results schema: one JSON per (dataset, split, method, seed), with provenance.
The leaderboard reads only these."""

from __future__ import annotations

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
__all__ = [*_EXPORTS]  # each public name is listed once, in _EXPORTS (name → module)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
