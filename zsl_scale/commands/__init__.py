"""Typer sub-apps, one per pipeline stage; ``zsl_scale.cli`` mounts them."""
