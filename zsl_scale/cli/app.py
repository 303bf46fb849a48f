"""The ``zsl-scale`` command line.

Each pipeline stage has one module of commands in :mod:`zsl_scale.cli` (``register(app)``); this module
mounts them, resolves ``evaluate imagenet`` and turns :class:`~zsl_scale.core.errors.ZslError` and usage
errors into one clear line and exit code 2.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any, ClassVar

import typer
from typer.core import TyperGroup

from zsl_scale.core import ZslError


class _RootGroup(TyperGroup):
    """The root command group, with one two-word command: ``evaluate imagenet``.

    ``zsl-scale evaluate imagenet …`` reads as the small-benchmark ``evaluate`` applied to ImageNet, but
    scoring ImageNet splits needs other inputs than a small benchmark's protocol; it is the
    ``imagenet evaluate`` command. Resolving it here (not by rewriting argv) keeps it part of the app,
    so every caller — the console script, typer's test runner, ``python -m zsl_scale`` — sees it.
    """

    aliases: ClassVar[dict[tuple[str, ...], tuple[str, str]]] = {("evaluate", "imagenet"): ("imagenet", "evaluate")}

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        for alias, (group, command) in self.aliases.items():
            if tuple(args[: len(alias)]) == alias:
                sub = self.get_command(ctx, group)
                target = sub.get_command(ctx, command) if sub is not None else None
                if target is not None:
                    return " ".join(alias), target, args[len(alias):]
        return super().resolve_command(ctx, args)


app = typer.Typer(
    name="zsl-scale",
    cls=_RootGroup,
    help="Large-scale generalized zero-shot learning with CADA-VAE.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# One module per command group, each exposing ``register(app)``.
COMMAND_MODULES = ("small", "splits", "classes", "features", "latents", "distributed", "imagenet",
                   "leaderboard", "jobs")
for _name in COMMAND_MODULES:
    importlib.import_module(f"zsl_scale.cli.{_name}").register(app)


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


def _debug_requested(argv: list[str]) -> bool:
    """``--debug`` before the command, or ``ZSL_SCALE_DEBUG=1``: re-raise errors with their traceback."""
    if os.environ.get("ZSL_SCALE_DEBUG", "") not in ("", "0"):
        return True
    for arg in argv:
        if not arg.startswith("-"):
            return False  # options after the command name belong to the command
        if arg == "--debug":
            return True
    return False


def _one_line(text: str) -> str:
    """Any message as one line: a multi-line message (a parser excerpt, a wrapped library error) is joined."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _environment_error_types() -> tuple[type[BaseException], ...]:
    """Errors of the environment or of input files that no validation caught: shown as one line too.

    ``OSError`` (permission denied, disk full, a folder where a file belongs) and pyarrow's errors
    (a truncated or random-bytes parquet file) are about the user's files, not the code.
    """
    types: list[type[BaseException]] = [OSError, UnicodeError]  # UnicodeError: a binary file read as text
    try:
        import pyarrow

        types.append(pyarrow.ArrowException)
    except ImportError:
        pass
    return tuple(types)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: user errors become one ``error: …`` line on stderr and exit code 2.

    ``zsl-scale --debug COMMAND …`` or ``ZSL_SCALE_DEBUG=1`` re-raises instead, for developers who want
    the traceback.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_requested(argv)
    try:
        app(args=argv, standalone_mode=False, prog_name="zsl-scale")
    except ZslError as exc:
        if debug:
            raise
        print(f"error: {_one_line(str(exc))}", file=sys.stderr)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except _usage_error_types() as exc:  # unknown option or command, missing argument, bad value
        if debug:
            raise
        print(_one_line(_usage_line(exc)), file=sys.stderr)
        sys.exit(2)
    except _environment_error_types() as exc:
        if debug:
            raise
        print(f"error: {_one_line(f'{type(exc).__name__}: {exc}')} (run with --debug for the traceback)",
              file=sys.stderr)
        sys.exit(2)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback of an error (also ZSL_SCALE_DEBUG=1)."),
) -> None:
    """Large-scale generalized zero-shot learning with CADA-VAE."""
