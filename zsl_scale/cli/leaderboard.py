"""``zsl-scale leaderboard``: CSV, Markdown and a static HTML page from results files only."""

from __future__ import annotations

from pathlib import Path

import typer


def leaderboard(
    results: list[Path] = typer.Argument(..., help="Results folders (searched recursively) or files."),
    out: Path = typer.Option(Path("leaderboard"), "--out", "-o", help="Output folder."),
) -> None:
    """Build the leaderboard (leaderboard.csv, leaderboard.md, index.html + PNG plots) from results JSONs.

    Published numbers from the CADA-VAE paper are shown beside ours and labelled as published.
    Results written with different schema versions are refused.
    """
    from zsl_scale.core import output_lock
    from zsl_scale.report import build_leaderboard, skipped_json_note

    with output_lock(out):
        written = build_leaderboard(results, out)
    for path in written.values():
        typer.echo(str(path))
    note = skipped_json_note(results)
    if note:
        typer.echo(note, err=True)


def register(app: typer.Typer) -> None:
    """Mount ``leaderboard`` as a top-level command."""
    app.command("leaderboard")(leaderboard)
