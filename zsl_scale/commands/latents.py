"""CLI commands for this stage (not yet implemented: registers nothing)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Mount this stage's commands on the root app."""
