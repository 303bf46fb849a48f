"""Per-class image count tables for the M*/L* splits: reading, checking and selecting.

The feature-extraction stage writes a (wnid, count) table; M500/M1K/M5K and L500/L1K/L5K are the
most / least populated classes outside the 1K. A table that misses a class or names an unknown one
would silently shift these splits, so both are errors, reported with the offending wnids.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from zsl_scale.core import DataError, read_text_file

WNID_RE = re.compile(r"^n\d{8}$")
_SHOW = 5


def read_count_table(path: str | os.PathLike[str]) -> dict[str, int]:
    """Read ``wnid,count`` rows from parquet (columns ``wnid``, ``count``) or CSV/TSV/whitespace text.

    Text files may have a header line (``wnid,count``); ``#`` comments and blank lines are skipped.

    Raises:
        DataError: missing file, bad row, negative count or duplicate wnid (with the line number).
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"count table not found: {p}")
    rows = _read_parquet(p) if p.suffix == ".parquet" else _read_text(p)
    out: dict[str, int] = {}
    for where, wnid, count in rows:
        if not WNID_RE.match(wnid):
            raise DataError(f"{p}{where}: not a wnid (expected n + 8 digits): {wnid!r}")
        if count < 0:
            raise DataError(f"{p}{where}: negative count {count} for {wnid}")
        if wnid in out:
            raise DataError(f"{p}{where}: duplicate wnid {wnid}")
        out[wnid] = count
    if not out:
        raise DataError(f"count table {p} has no rows")
    return out


def _read_parquet(p: Path) -> list[tuple[str, str, int]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(p)
    except Exception as exc:  # pyarrow raises several types for a non-parquet file
        raise DataError(f"cannot read count table {p}: {exc}") from exc
    missing = {"wnid", "count"} - set(table.column_names)
    if missing:
        raise DataError(f"count table {p} lacks column(s) {', '.join(sorted(missing))}")
    wnids = table.column("wnid").to_pylist()
    counts = table.column("count").to_pylist()
    out = []
    for i, (w, c) in enumerate(zip(wnids, counts, strict=True)):
        if not isinstance(c, int) or isinstance(c, bool):
            raise DataError(f"{p} row {i}: count is not an integer: {c!r}")
        out.append((f" row {i}", str(w), c))
    return out


def _read_text(p: Path) -> list[tuple[str, str, int]]:
    out = []
    try:
        lines = read_text_file(p, "count table").splitlines()
    except UnicodeDecodeError as exc:
        raise DataError(f"count table {p} is not UTF-8 text (parquet needs a .parquet suffix)") from exc
    for lineno, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = [f for f in re.split(r"[\t,; ]+", line) if f]
        if len(fields) != 2:
            raise DataError(f"{p}:{lineno}: expected 2 fields (wnid, count), got {len(fields)}: {raw!r}")
        if not out and fields[0].lower() == "wnid":
            continue  # header
        try:
            count = int(fields[1])
        except ValueError:
            raise DataError(f"{p}:{lineno}: count is not an integer: {fields[1]!r}") from None
        out.append((f":{lineno}", fields[0], count))
    return out


def validate_counts(counts: dict[str, int], required: Sequence[str], known: set[str]) -> None:
    """Check that ``counts`` covers every ``required`` class and names only ``known`` ones.

    Raises:
        DataError: unknown wnids or missing classes (the first few are named, with totals).
    """
    unknown = sorted(set(counts) - known)
    if unknown:
        raise DataError(
            f"count table has {len(unknown)} wnid(s) that are not ImageNet-21K/1K classes: {_few(unknown)}"
        )
    missing = sorted(set(required) - set(counts))
    if missing:
        raise DataError(
            f"count table misses {len(missing)} of the {len(required)} classes outside the 1K: {_few(missing)}"
        )


def select_by_count(counts: dict[str, int], candidates: Iterable[str], n: int, most: bool) -> list[str]:
    """The ``n`` most (or least) populated candidates with count > 0, returned sorted by wnid.

    Tie rule: among equal counts, the smaller wnid wins (is taken first), for both M and L splits.
    Classes with no image cannot be evaluated, so they never enter a split.

    Raises:
        DataError: fewer than ``n`` candidates with images.
    """
    pool = [w for w in candidates if counts.get(w, 0) > 0]
    if len(pool) < n:
        raise DataError(f"only {len(pool)} classes outside the 1K have images; cannot pick {n}")
    key = (lambda w: (-counts[w], w)) if most else (lambda w: (counts[w], w))
    return sorted(sorted(pool, key=key)[:n])


def _few(items: Sequence[str]) -> str:
    head = ", ".join(items[:_SHOW])
    return head + (f", … (+{len(items) - _SHOW} more)" if len(items) > _SHOW else "")
