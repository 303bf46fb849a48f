"""The ``zsl-scale`` command line.

Each pipeline stage owns a typer sub-app in :mod:`zsl_scale.commands`; this module only mounts them
and turns :class:`~zsl_scale.errors.ZslError` into one clear line and exit code 2.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

from zsl_scale.errors import ZslError

app = typer.Typer(
    name="zsl-scale",
    help="Large-scale generalized zero-shot learning with CADA-VAE.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _mount() -> None:
    """Register the stage sub-apps; each module in ``_COMMAND_MODULES`` exposes ``register(app)``."""
    import importlib

    for name in _COMMAND_MODULES:
        importlib.import_module(f"zsl_scale.commands.{name}").register(app)


_COMMAND_MODULES = ("core", "splits", "classes", "features", "latents", "distributed", "imagenet", "leaderboard",
                    "jobs")
# ``zsl-scale evaluate imagenet …`` reads as the small-benchmark ``evaluate`` applied to ImageNet; it is
# the ``imagenet evaluate`` command (scoring splits needs other inputs than a small benchmark's protocol).
_ALIASES = {("evaluate", "imagenet"): ["imagenet", "evaluate"]}
_mount()


def resolve_aliases(argv: list[str]) -> list[str]:
    """Rewrite a command alias (:data:`_ALIASES`) at the start of ``argv`` to its command."""
    for alias, target in _ALIASES.items():
        if tuple(argv[: len(alias)]) == alias:
            return [*target, *argv[len(alias):]]
    return argv


def _usage_error_types() -> tuple[type[BaseException], ...]:
    """Click's exception classes: typer ≥ 0.24 vendors its own click (``typer._click``), older typer uses click."""
    types: list[type[BaseException]] = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            types.append(importlib.import_module(module).ClickException)
        except (ImportError, AttributeError):
            continue
    return tuple(types)


def _usage_line(exc: BaseException) -> str:
    """One line for a usage error: click's message, its did-you-mean, and where to get help."""
    message = " ".join(str(exc.format_message()).split())  # type: ignore[attr-defined]
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        return f"error: {message} (see '{ctx.command_path} --help')"
    return f"error: {message}"


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: user errors become one ``error: …`` line on stderr and exit code 2.

    ``ZSL_SCALE_DEBUG=1`` re-raises instead, for developers who want the traceback.
    """
    argv = resolve_aliases(list(sys.argv[1:] if argv is None else argv))
    debug = os.environ.get("ZSL_SCALE_DEBUG", "") not in ("", "0")
    try:
        app(args=argv, standalone_mode=False, prog_name="zsl-scale")
    except ZslError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except _usage_error_types() as exc:  # unknown option or command, missing argument, bad value
        if debug:
            raise
        print(_usage_line(exc), file=sys.stderr)
        sys.exit(2)
