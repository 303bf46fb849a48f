"""Finding and reading WordNet 3.0, and extracting its noun is-a graph into flat arrays.

WordNet is found (see :func:`find_wordnet`) in ``$ZSL_SCALE_WORDNET``, in nltk's own data
directories (``python -m nltk.downloader wordnet``), or in a WordNet "dict" directory such as Debian's
``/usr/share/wordnet``. nltk >= 3.10 only reads corpora under a directory on ``nltk.data.path`` and
refuses symlinks that leave it, so a dict directory is copied once into
``<cache>/nltk_data/corpora/wordnet`` (with the ``lexnames`` file Debian omits, shipped here as
package data) and that ``nltk_data`` folder is prepended to ``nltk.data.path``.

Reading WordNet through nltk takes 10-90 s; the arrays built here (the cache format of
:mod:`zsl_scale.imagenet.hierarchy`) load in well under a second. They are plain numeric/uint8 arrays in an
``.npz`` (no pickle), so a cache file can never execute code.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import warnings
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from zsl_scale.core import PACKAGE_DATA, DataError, atomic_path, cache_dir, sha256_file

GRAPH_FORMAT = 1
WORDNET_ENV = "ZSL_SCALE_WORDNET"
DICT_DIRS: tuple[str, ...] = (
    "/usr/share/wordnet",
    "/usr/local/share/wordnet",
    "/usr/local/WordNet-3.0/dict",
    "/opt/homebrew/share/wordnet",
)
INSTALL_HINT = (
    "install WordNet 3.0: `apt-get install wordnet-base wordnet-sense-index` (Debian/Ubuntu, files in "
    "/usr/share/wordnet), or `python -m nltk.downloader wordnet`, or set ZSL_SCALE_WORDNET to a "
    "WordNet dict directory"
)
LEXNAMES_FILE = PACKAGE_DATA / "wordnet" / "lexnames"
STAGED_MARKER = ".zsl-scale-staged"


@dataclass(frozen=True)
class WordNetSource:
    """Where WordNet was found.

    Attributes:
        kind: ``"nltk"`` (an nltk corpus directory or zip) or ``"dict"`` (a plain WordNet dict dir).
        path: The corpus directory / zip file, or the dict directory.
    """

    kind: Literal["nltk", "dict"]
    path: Path

    def fingerprint(self) -> str:
        """Short hash of the noun data file: the cache key of the extracted graph."""
        target = self.path if self.path.is_file() else self.path / "data.noun"
        return sha256_file(target)[:16]


def _is_dict_dir(path: Path) -> bool:
    return (path / "data.noun").is_file() and (path / "index.noun").is_file()


def find_wordnet(explicit: str | os.PathLike[str] | None = None) -> WordNetSource:
    """Locate WordNet 3.0: ``explicit`` or ``$ZSL_SCALE_WORDNET``, then nltk's data path, then dict dirs.

    An explicit location is used as given (no silent fallback), so that a typo is reported rather than
    another WordNet being used behind the user's back.

    Raises:
        DataError: nothing found; the message says how to install WordNet.
    """
    given = explicit if explicit is not None else os.environ.get(WORDNET_ENV)
    if given:
        path = Path(given).expanduser()
        for cand in (path, path / "dict", path / "corpora" / "wordnet"):
            if _is_dict_dir(cand):
                return WordNetSource("dict", cand.resolve())
        raise DataError(f"no WordNet dict (data.noun, index.noun) in {path}; {INSTALL_HINT}")
    nltk_src = _find_nltk_wordnet()
    if nltk_src is not None:
        return nltk_src
    for d in DICT_DIRS:
        if _is_dict_dir(Path(d)):
            return WordNetSource("dict", Path(d))
    raise DataError(f"WordNet 3.0 not found (nltk data path, {', '.join(DICT_DIRS)}); {INSTALL_HINT}")


def nltk_search_path() -> list[str]:
    """nltk's data search path, without importing nltk when it is not loaded yet.

    ``import nltk`` alone takes 1-3 s, more than loading the cached graph; so unless nltk is already
    imported (then its possibly user-modified ``nltk.data.path`` is used), this mirrors nltk's default
    list (``$NLTK_DATA``, ``~/nltk_data``, ``<prefix>/{,share/,lib/}nltk_data``, system folders).
    """
    if "nltk.data" in sys.modules:
        return list(sys.modules["nltk.data"].path)
    path = [os.path.expanduser(d) for d in os.environ.get("NLTK_DATA", "").split(os.pathsep) if d]
    path.append(os.path.expanduser("~/nltk_data"))
    path += [os.path.join(sys.prefix, *sub, "nltk_data") for sub in ((), ("share",), ("lib",))]
    path += ["/usr/share/nltk_data", "/usr/local/share/nltk_data", "/usr/lib/nltk_data", "/usr/local/lib/nltk_data"]
    if os.name == "nt":
        path += [os.path.join(os.environ.get("APPDATA", "C:\\"), "nltk_data"), "C:\\nltk_data"]
    return path


def _find_nltk_wordnet() -> WordNetSource | None:
    for entry in nltk_search_path():
        if (Path(entry) / STAGED_MARKER).is_file():
            continue  # our own copy of a dict dir is not "nltk's data"
        for name in ("corpora/wordnet", "corpora/wordnet.zip"):
            path = Path(entry) / name
            if (path.is_dir() and _is_dict_dir(path)) or path.is_file():
                return WordNetSource("nltk", path)
    return None


def open_wordnet(source: WordNetSource) -> Any:
    """An nltk ``WordNetCorpusReader`` on ``source`` (10-30 s: only used when the cache is cold)."""
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    if source.kind == "dict":
        root = _stage_dict_dir(source.path)
        pointer: Any = nltk.data.FileSystemPathPointer(str(root))
    elif source.path.is_file():
        pointer = nltk.data.ZipFilePathPointer(str(source.path), "wordnet/")
    else:
        pointer = nltk.data.FileSystemPathPointer(str(source.path))
    try:
        with warnings.catch_warnings():  # "multilingual functions are not available": we need none
            warnings.simplefilter("ignore", UserWarning)
            return WordNetCorpusReader(pointer, None)
    except (OSError, ValueError, LookupError) as exc:
        raise DataError(f"cannot read WordNet at {source.path}: {exc}; {INSTALL_HINT}") from exc


def _stage_dict_dir(dict_dir: Path) -> Path:
    """Copy a dict dir under ``<cache>/nltk_data/corpora/wordnet`` (once) and put it on nltk's path."""
    import nltk

    data_root = cache_dir() / "nltk_data"
    dest = data_root / "corpora" / "wordnet"
    dest.mkdir(parents=True, exist_ok=True)
    for src in sorted(dict_dir.iterdir()):
        if src.is_file() and not src.name.startswith("."):
            _copy_if_changed(src, dest / src.name)
    if not (dict_dir / "lexnames").is_file():
        _copy_if_changed(LEXNAMES_FILE, dest / "lexnames")
    (data_root / STAGED_MARKER).write_text(f"copy of {dict_dir} made by zsl-scale\n")
    if str(data_root) not in nltk.data.path:
        nltk.data.path.insert(0, str(data_root))
    return dest


def _copy_if_changed(src: Path, dest: Path) -> None:
    if dest.is_file() and dest.stat().st_size == src.stat().st_size:
        return
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)


def build_graph_arrays(reader: Any, source_kind: str) -> dict[str, np.ndarray]:
    """Extract the noun graph from an nltk WordNet reader.

    Rows are noun synsets sorted by offset; edges are (child, parent, kind) with kind 0 = hypernym,
    1 = instance hypernym. Depths are computed here once: min by BFS from the roots (nltk's
    ``min_depth``), max by a longest-path pass in topological order (nltk's ``max_depth``).
    """
    synsets = sorted(reader.all_synsets("n"), key=lambda s: s.offset())
    index = {s.offset(): i for i, s in enumerate(synsets)}
    lexnames = sorted({s.lexname() for s in synsets})
    lex_id = {name: i for i, name in enumerate(lexnames)}
    child: list[int] = []
    parent: list[int] = []
    kind: list[int] = []
    for i, s in enumerate(synsets):
        for k, hypers in enumerate((s.hypernyms(), s.instance_hypernyms())):
            for h in sorted(hypers, key=lambda h: h.offset()):
                child.append(i)
                parent.append(index[h.offset()])
                kind.append(k)
    min_depth, max_depth = _depths(len(synsets), child, parent)
    meta = {"format": GRAPH_FORMAT, "wordnet_version": str(reader.get_version()), "source_kind": source_kind}
    return {
        "offsets": np.array([s.offset() for s in synsets], dtype=np.int64),
        "names": pack_strings([s.name() for s in synsets]),
        "lexnames": pack_strings(lexnames),
        "lex": np.array([lex_id[s.lexname()] for s in synsets], dtype=np.int16),
        "edge_child": np.array(child, dtype=np.int32),
        "edge_parent": np.array(parent, dtype=np.int32),
        "edge_kind": np.array(kind, dtype=np.int8),
        "min_depth": min_depth,
        "max_depth": max_depth,
        "meta": pack_strings([json.dumps(meta, sort_keys=True)]),
    }


def pack_strings(strings: list[str]) -> np.ndarray:
    """Strings as one newline-joined uint8 buffer: loads without pickle, in milliseconds."""
    return np.frombuffer("\n".join(strings).encode(), dtype=np.uint8)


def unpack_strings(buf: np.ndarray) -> list[str]:
    """Inverse of :func:`pack_strings`."""
    return bytes(buf).decode().split("\n")


def _depths(n: int, child: list[int], parent: list[int]) -> tuple[np.ndarray, np.ndarray]:
    parents: list[list[int]] = [[] for _ in range(n)]
    children: list[list[int]] = [[] for _ in range(n)]
    for c, p in zip(child, parent, strict=True):
        parents[c].append(p)
        children[p].append(c)
    min_d = np.zeros(n, dtype=np.int16)
    max_d = np.zeros(n, dtype=np.int16)
    pending = [len(p) for p in parents]
    queue = deque(i for i in range(n) if not parents[i])
    while queue:  # Kahn's order: a node is popped after all its parents, so its depths are final
        i = queue.popleft()
        for c in children[i]:
            max_d[c] = max(max_d[c], max_d[i] + 1)
            pending[c] -= 1
            if pending[c] == 0:
                min_d[c] = min(int(min_d[p]) for p in parents[c]) + 1
                queue.append(c)
    return min_d, max_d
