"""Loading ``.pt`` files a user can hand us (checkpoints, ``vae.pt``, ``classifier.pt``) as data, never code.

``torch.load(..., weights_only=False)`` unpickles arbitrary Python objects, so a file from a colleague
or shared storage could run code the moment it is opened. Every loader in the package goes through
:func:`load_torch_file`, which uses torch's restricted unpickler (tensors, dicts, lists, tuples, numbers,
strings) and turns every failure — a refused object, random bytes, a truncated file — into one
:class:`DataError` line. Our writers store configs and metadata as plain JSON-able values and tensors,
so files of this version always load; an older file that needs pickle is refused with the fix (re-create it).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from zsl_scale.core.errors import DataError


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def load_torch_file(path: str | os.PathLike[str], what: str, map_location: Any = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with one-line :class:`DataError` messages.

    Args:
        path: the file to read.
        what: what the file should be (``"model checkpoint"``, ``"classifier"``), for the message.
        map_location: passed to :func:`torch.load`.
    """
    import pickle

    import torch

    p = Path(path)
    if not p.is_file():
        raise DataError(f"{what} not found: {p}" if not p.exists() else f"{what} {p} is not a file")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of files it then refuses anyway
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "GLOBAL" in str(exc):  # a class or function reference: code, not data
            raise DataError(
                f"{what} {p} holds Python objects, not plain data; refusing to unpickle it (it could run code). "
                "If an older zsl-scale wrote it, re-create it with this version") from None
        raise DataError(f"cannot load {what} {p}: not a plain-data torch file (the restricted unpickler refused "
                        "it: random bytes, or a pickle torch did not write)") from None
    except MemoryError:
        raise
    except Exception as exc:  # a truncated zip or an empty file surface as many exception types
        raise DataError(f"cannot load {what} {p}: not a readable torch file ({_first_line(exc)})") from None
