"""The ``zsl-scale`` command line.

Each pipeline stage owns a typer sub-app in :mod:`zsl_scale.commands`; this module only mounts them
and turns :class:`~zsl_scale.errors.ZslError` into one clear line and exit code 2.
"""

from __future__ import annotations

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


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: user errors become ``error: …`` on stderr and exit code 2."""
    argv = resolve_aliases(list(sys.argv[1:] if argv is None else argv))
    try:
        app(args=argv, standalone_mode=False)
    except ZslError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
