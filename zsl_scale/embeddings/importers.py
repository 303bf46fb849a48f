"""Import pre-computed class vectors into the class-embedding cache: word2vec files, attribute matrices.

The paper's ImageNet experiments use word2vec class embeddings and the small benchmarks use
per-class attribute (or sentence) matrices; importing both into the cache of
:mod:`zsl_scale.embeddings.embed` lets every later stage read any kind of class vector with
:func:`zsl_scale.embeddings.embed.load_class_embeddings`.

word2vec files are streamed and only the vectors of wanted tokens are kept, so a 3M-word GoogleNews
file (3.6 GB) never has to fit in memory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from zsl_scale.core import DataError, read_text_file, sha256_file
from zsl_scale.embeddings.embed import cache_path_for, text_hash, write_part
from zsl_scale.imagenet import lemmas


@dataclass
class ImportReport:
    """Outcome of an import: which classes got a vector (and from which token), which did not."""

    model_id: str
    dim: int
    found: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    cache_path: Path | None = None


def candidate_tokens(wnid: str) -> list[str]:
    """word2vec tokens to try for a class, in order: each lemma as a phrase (``Tinca_tinca``), lowercased."""
    out: list[str] = []
    for lemma in (x.strip() for x in lemmas().get(wnid, "").split(",")):
        if lemma:
            phrase = re.sub(r"\s+", "_", lemma)
            out += [phrase, phrase.lower()]
    return list(dict.fromkeys(out))


def _words(wnid: str) -> list[str]:
    first = lemmas().get(wnid, "").split(",")[0].strip()
    return [w for w in re.split(r"[\s_-]+", first) if w]


def detect_binary(path: Path) -> bool:
    """True if a word2vec file is in the binary format (its first vector bytes are not text)."""
    with open(path, "rb") as fh:
        fh.readline()
        sample = fh.read(4096)
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < len(sample) - 4  # a multi-byte char cut at the end is still text
    return False


def iter_word2vec(path: str | os.PathLike[str], binary: bool | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(token, vector)`` from a word2vec text or binary file (format auto-detected).

    Raises:
        DataError: missing file, bad header, or a truncated / malformed record.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"word2vec file not found: {p}")
    binary = detect_binary(p) if binary is None else binary
    with open(p, "rb") as fh:
        header = fh.readline().split()
        try:
            count, dim = int(header[0]), int(header[1])
        except (IndexError, ValueError):
            raise DataError(f"{p}: not a word2vec file (first line must be '<count> <dim>')") from None
        reader = _iter_binary(fh, count, dim, p) if binary else _iter_text(fh, dim, p)
        yield from reader


def _iter_text(fh: BinaryIO, dim: int, p: Path) -> Iterator[tuple[str, np.ndarray]]:
    for lineno, raw in enumerate(fh, 2):
        parts = raw.decode("utf-8", errors="replace").rstrip().split(" ")
        if len(parts) == 1 and not parts[0]:
            continue
        if len(parts) != dim + 1:
            raise DataError(f"{p}:{lineno}: expected a token and {dim} numbers, got {len(parts) - 1}")
        try:
            yield parts[0], np.asarray(parts[1:], dtype=np.float32)
        except ValueError:
            raise DataError(f"{p}:{lineno}: vector is not numeric") from None


def _iter_binary(fh: BinaryIO, count: int, dim: int, p: Path) -> Iterator[tuple[str, np.ndarray]]:
    nbytes = 4 * dim
    for i in range(count):
        token = bytearray()
        while (ch := fh.read(1)) != b" ":
            if not ch:
                raise DataError(f"{p}: truncated at record {i} of {count}")
            if ch != b"\n":
                token += ch
        data = fh.read(nbytes)
        if len(data) != nbytes:
            raise DataError(f"{p}: truncated vector at record {i} of {count}")
        yield token.decode("utf-8", errors="replace"), np.frombuffer(data, dtype="<f4").copy()


def import_word2vec(
    path: str | os.PathLike[str],
    wnids: Sequence[str],
    model_id: str | None = None,
    binary: bool | None = None,
    cache_root: str | os.PathLike[str] | None = None,
) -> ImportReport:
    """Look up a vector for every class and write them to the cache as model ``word2vec:<file stem>``.

    A class gets the vector of its first lemma found as a token (phrases joined with ``_``, then
    lowercased); failing that, the mean of the first lemma's word vectors if all of its words exist.
    Classes with neither are reported in ``missing`` (and get no cache row).
    """
    p = Path(path)
    model_id = model_id or f"word2vec:{p.stem}"
    tokens = {w: candidate_tokens(w) for w in wnids}
    words = {w: _words(w) for w in wnids}
    wanted = {t for ts in tokens.values() for t in ts} | {x for ws in words.values() for x in ws}
    wanted |= {x.lower() for x in wanted}
    vectors: dict[str, np.ndarray] = {}
    dim = 0
    for token, vec in iter_word2vec(p, binary):
        dim = len(vec)
        if token in wanted and token not in vectors:
            vectors[token] = vec
    report = ImportReport(model_id, dim)
    rows: dict[str, list] = {"class_id": [], "model_fp": [], "text_sha": []}
    out: list[np.ndarray] = []
    for w in dict.fromkeys(wnids):
        hit = next((t for t in tokens[w] if t in vectors), None)
        if hit is not None:
            vec, source = vectors[hit], hit
        else:
            parts = [vectors.get(x, vectors.get(x.lower())) for x in words[w]]
            if not parts or any(v is None for v in parts):
                report.missing.append(w)
                continue
            vec, source = np.mean(parts, axis=0), "mean(" + " ".join(words[w]) + ")"
        report.found[w] = source
        rows["class_id"].append(w)
        rows["text_sha"].append(text_hash(source))
        out.append(vec)
    if not out:
        raise DataError(f"{p}: no class of the {len(set(wnids))} requested has a vector in this file")
    fp = sha256_file(p)[:16]
    rows["model_fp"] = [fp] * len(out)
    report.cache_path = _replace_cache(model_id, rows, np.stack(out), cache_root)
    return report


def _replace_cache(
    model_id: str, rows: dict[str, list], vectors: np.ndarray, cache_root: str | os.PathLike[str] | None
) -> Path:
    """An import is cheap and complete: it replaces the model's cache (new part first, old ones after)."""
    old = sorted(cache_path_for(model_id, cache_root).glob("part-*.parquet"))
    new = write_part(model_id, rows, vectors, cache_root)
    for f in old:
        f.unlink()
    return new.parent


def read_attribute_matrix(
    path: str | os.PathLike[str], class_ids: Sequence[str] | None = None, key: str = "att"
) -> tuple[list[str], np.ndarray]:
    """Read a per-class attribute matrix as ``(class ids, [C, D] float32)``.

    Formats: xlsa17 ``att_splits.mat`` (``att`` is D x C; ids from ``allclasses_names`` when present,
    else ``class_001`` … 1-based like xlsa17 labels), ``.npy`` (C x D; ids from ``class_ids``), or
    CSV/TSV text whose first column is the class id.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"attribute matrix not found: {p}")
    if p.suffix == ".mat":
        import scipy.io

        mat = scipy.io.loadmat(p)
        if key not in mat:
            raise DataError(f"{p} has no {key!r} matrix (keys: {', '.join(k for k in mat if not k.startswith('__'))})")
        matrix = np.asarray(mat[key], dtype=np.float32).T
        names = mat.get("allclasses_names")
        ids = [str(np.ravel(x)[0]) for x in np.ravel(names)] if names is not None else None
    elif p.suffix == ".npy":
        matrix, ids = np.asarray(np.load(p, allow_pickle=False), dtype=np.float32), None
    else:
        ids, rows = [], []
        for lineno, line in enumerate(read_text_file(p, "attribute table").splitlines(), 1):
            fields = [f for f in re.split(r"[\t,; ]+", line.strip()) if f]
            if not fields:
                continue
            try:
                rows.append([float(x) for x in fields[1:]])
            except ValueError:
                if lineno == 1:
                    continue  # header
                raise DataError(f"{p}:{lineno}: non-numeric attribute value") from None
            ids.append(fields[0])
        if len({len(r) for r in rows}) != 1:
            raise DataError(f"{p}: rows have different numbers of attributes")
        matrix = np.asarray(rows, dtype=np.float32)
    if matrix.ndim != 2:
        raise DataError(f"{p}: attribute matrix must be 2-D, got shape {matrix.shape}")
    ids = list(class_ids) if class_ids is not None else ids
    if ids is None:
        ids = [f"class_{i:03d}" for i in range(1, matrix.shape[0] + 1)]
    if len(ids) != matrix.shape[0]:
        raise DataError(f"{p}: {matrix.shape[0]} rows but {len(ids)} class ids")
    return ids, matrix


def import_attributes(
    path: str | os.PathLike[str],
    model_id: str | None = None,
    class_ids: Sequence[str] | None = None,
    key: str = "att",
    cache_root: str | os.PathLike[str] | None = None,
) -> ImportReport:
    """Import an attribute matrix into the cache as model ``attributes:<file stem>``."""
    p = Path(path)
    ids, matrix = read_attribute_matrix(p, class_ids, key)
    model_id = model_id or f"attributes:{p.stem}"
    fp = sha256_file(p)[:16]
    rows = {"class_id": ids, "model_fp": [fp] * len(ids), "text_sha": [text_hash(f"{key}:{i}") for i in ids]}
    report = ImportReport(model_id, int(matrix.shape[1]), found={i: key for i in ids})
    report.cache_path = _replace_cache(model_id, rows, matrix, cache_root)
    return report
