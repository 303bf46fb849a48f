"""The leaderboard: CSV, Markdown, HTML and PNG plots from results files, published numbers beside ours."""

from __future__ import annotations

from zsl_scale.core import lazy_exports

_EXPORTS = {
    "build_leaderboard": "leaderboard",
    "skipped_json_note": "leaderboard",
}
__all__ = [*_EXPORTS]  # each public name is listed once, in _EXPORTS (name → module)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
