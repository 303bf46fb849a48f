"""The ``zsl-scale`` command line: the root app (:mod:`zsl_scale.cli.app`) and one module per command group.

The only layer that may import every stage; no stage imports it.
"""

from zsl_scale.cli.app import app, main

__all__ = ["app", "main"]
