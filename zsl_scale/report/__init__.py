"""The leaderboard: CSV, Markdown, HTML and PNG plots from results files, published numbers beside ours."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zsl_scale.core import lazy_exports

_EXPORTS = {
    "build_leaderboard": "leaderboard",
    "skipped_json_note": "leaderboard",
}
__all__ = [
    "build_leaderboard",
    "skipped_json_note",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # static analysers see the names; at run time they load on first use
    from zsl_scale.report.leaderboard import build_leaderboard, skipped_json_note
