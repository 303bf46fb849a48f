"""User-facing errors.

Every stage raises :class:`ZslError` (or a subclass) for bad input so that the CLI can turn it into
one clear line on stderr and a non-zero exit, instead of a traceback. Programming errors stay ordinary
exceptions: they should be loud.
"""

from __future__ import annotations


class ZslError(Exception):
    """Bad input or an unsatisfiable request; the message is shown to the user as is."""


class DataError(ZslError):
    """Input data is missing, malformed or inconsistent (files, splits, features, embeddings)."""


class ConfigError(ZslError):
    """A configuration value or override is invalid."""
