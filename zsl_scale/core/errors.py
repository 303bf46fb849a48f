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


def worker_user_error(exc: BaseException) -> ZslError | None:
    """The user error a worker raised, found inside the wrapper that carried it to the driver; else None.

    Ray wraps a worker's exception (``RayTaskError``, whose class also derives from the original one, with
    the worker's traceback in its message; Ray Train's ``TrainingFailedError`` with ``worker_failures``);
    the chain is walked through ``__cause__``, ``__context__``, ``cause``, ``error`` and ``worker_failures``.
    Returned as a fresh exception of the original class holding only the worker's own message, so the CLI
    prints that one line (exit 2), not the wrapper's traceback.
    """
    seen: list[int] = []
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.append(id(e))
        inner = [getattr(e, "cause", None), getattr(e, "error", None), e.__cause__, e.__context__,
                 *getattr(e, "worker_failures", {}).values()]
        nested = [i for i in inner if isinstance(i, BaseException)]
        if isinstance(e, ZslError) and not any(isinstance(i, ZslError) for i in nested):
            cls = next(c for c in type(e).__mro__ if issubclass(c, ZslError) and c.__module__.startswith("zsl_scale"))
            message = e.args[0] if e.args and isinstance(e.args[0], str) else str(e)
            return cls(message)
        stack.extend(nested)
    return None
