"""The report stage: leaderboard CSV, Markdown and a static HTML page with PNG plots, from results only.

Everything here is derived from results files (:func:`zsl_scale.results.schema.read_result`) plus the
published numbers bundled in ``zsl_scale/data/published/`` (each with its table/section in the
paper), so a leaderboard can be rebuilt anywhere the JSON files are. Published numbers are always
labelled ``published`` and never mixed into our aggregates, and shown only for datasets we have results
on. Every row carries how its epochs/hyper-parameters were chosen (validation, fixed, test-oracle,
published). Above the full table, :mod:`zsl_scale.report.compare` lays methods side by side. The HTML page
has a few lines of plain JavaScript (sortable columns; the page reads fine without it) and only relative
links to its PNGs, so it opens from disk, in CI, or behind any static file server.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from zsl_scale.core import PACKAGE_DATA, DataError, atomic_write_text
from zsl_scale.report.compare import (
    SORT_SCRIPT,
    class_set_label,
    comparison_html,
    comparison_markdown,
    selection_label,
)
from zsl_scale.report.plots import IMAGENET_SPLIT_ORDER, render_all
from zsl_scale.results import SELECTIONS, ResultRecord, read_result

if TYPE_CHECKING:
    pass

CSV_FIELDS = ("source", "dataset", "split", "class_set", "method", "setting", "selection", "seed", "S", "U", "H", "zsl",
              "top1", "top5", "config_sha256", "git_commit", "device", "date", "file")
GROUP_KEYS = ("source", "dataset", "split", "class_set", "method", "setting", "selection")
METRIC_COLUMNS = ("S", "U", "H", "zsl", "top1", "top5")
SELECTION_ORDER = {s: i for i, s in enumerate(SELECTIONS)}


def find_result_files(dirs: Iterable[str | Path]) -> list[Path]:
    """Results files under ``dirs`` (recursive): canonical names ``<dataset>__…__seed<N>.json``."""
    files: list[Path] = []
    for d in dirs:
        d = Path(d)
        if d.is_file():
            files.append(d)
        elif d.is_dir():
            files.extend(p for p in sorted(d.rglob("*__seed*.json")) if not p.name.startswith("."))
        else:
            raise DataError(f"results path {d} does not exist")
    return files


def skipped_json_note(dirs: Iterable[str | Path]) -> str | None:
    """One line naming the ``.json`` files in ``dirs`` that are not results (a run's ``selection.json``, a
    stray file of another schema): the leaderboard skips them, and says so instead of staying silent."""
    skipped = [p for d in dirs if Path(d).is_dir() for p in sorted(Path(d).rglob("*.json"))
               if "__seed" not in p.name and not p.name.startswith(".")]
    if not skipped:
        return None
    return (f"note: skipped {len(skipped)} .json file(s) not named like results (<dataset>__…__seed<N>.json), "
            f"e.g. {skipped[0]}")


def load_results(dirs: Iterable[str | Path]) -> list[tuple[ResultRecord, Path]]:
    """Read every results file; mixed schema versions are refused (their numbers may not compare)."""
    files = find_result_files(dirs)
    if not files:
        raise DataError("no results files (*__seed<N>.json) found in " + ", ".join(str(d) for d in dirs))
    loaded = [(read_result(p), p) for p in files]
    versions: dict[str, list[Path]] = defaultdict(list)
    for rec, path in loaded:
        versions[rec.schema_version].append(path)
    if len(versions) > 1:
        parts = ", ".join(f"{v} ({len(ps)} files, e.g. {ps[0]})" for v, ps in sorted(versions.items()))
        raise DataError(f"results have mixed schema versions: {parts}; re-run or convert them to one version")
    return loaded


def published_entries() -> list[dict]:
    """Published numbers bundled with the package, each labelled with its source and table."""
    out = []
    for path in sorted((PACKAGE_DATA / "published").glob("*.json")):
        doc = json.loads(path.read_text())
        for e in doc["entries"]:
            note = f"; selection: {e['selection']}" if e.get("selection") else ""
            out.append({**e, "source": f"published: {doc['source']}, {e['where']}{note}"})
    return out


def method_label(rec: ResultRecord) -> str:
    """The method as the board names it: a plugin's origin and a prediction file's sha256 are part of it, so
    rows of different plugin versions or files are never averaged together."""
    plugin = rec.provenance.get("method_plugin")
    if isinstance(plugin, dict) and plugin:
        from zsl_scale.methods import origin_label

        return f"{rec.method} [{origin_label(plugin)}]"
    pred = rec.extra.get("predictions")
    if rec.selection == "external" and isinstance(pred, dict) and pred.get("sha256"):
        return f"{rec.method} [predictions {str(pred['sha256'])[:12]}]"
    return rec.method


def result_row(rec: ResultRecord, path: Path | None = None) -> dict:
    """One flat CSV row for a results file."""
    m = rec.metrics
    prov = rec.provenance
    return {"source": "ours", "dataset": rec.dataset, "split": rec.split,
            "class_set": class_set_label(rec.extra.get("eval_set")), "method": method_label(rec),
            "setting": rec.setting, "selection": selection_label(rec), "seed": rec.seed,
            "S": m.S, "U": m.U, "H": m.H, "zsl": m.zsl,
            "top1": m.top_k.get("top1"), "top5": m.top_k.get("top5"), "config_sha256": rec.config_sha256,
            "git_commit": prov.get("git_commit"), "device": prov.get("device"), "date": prov.get("date"),
            "file": str(path) if path else ""}


def published_rows() -> list[dict]:
    return [{"source": e["source"], "dataset": e["dataset"], "split": e.get("split", "test"),
             "class_set": f"universe {e['universe']}" if e.get("universe") else "",
             "method": e["method"], "setting": e["setting"], "selection": "published", "seed": "",
             **{k: e.get(k) for k in METRIC_COLUMNS}} for e in published_entries()]


def aggregate(rows: Sequence[dict]) -> list[dict]:
    """Mean (and std, n) over seeds per (source, dataset, split, method, setting, selection).

    Selection is part of the key: numbers chosen on validation are never averaged with fixed or
    test-oracle ones.
    """
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[tuple(r.get(k, "") for k in GROUP_KEYS)].append(r)
    out = []
    for key, rs in groups.items():
        agg = dict(zip(GROUP_KEYS, key, strict=True))
        agg["n"] = len(rs) if key[0] == "ours" else None
        for col in METRIC_COLUMNS:
            vals = [float(r[col]) for r in rs if r.get(col) is not None]
            agg[col] = sum(vals) / len(vals) if vals else None
            agg[col + "_std"] = _std(vals)
        out.append(agg)
    return sorted(out, key=_sort_key)


def _std(vals: list[float]) -> float | None:
    if len(vals) < 2:
        return None
    mu = sum(vals) / len(vals)
    return math.sqrt(sum((v - mu) ** 2 for v in vals) / (len(vals) - 1))


def _sort_key(r: dict) -> tuple:
    split_rank = IMAGENET_SPLIT_ORDER.index(r["split"]) if r["split"] in IMAGENET_SPLIT_ORDER else 99
    return (r["dataset"].lower(), split_rank, r["split"], r["setting"], r["source"] != "ours",
            SELECTION_ORDER.get(r.get("selection", ""), 9), r["method"])


def _fmt(v: float | None, std: float | None = None) -> str:
    if v is None:
        return "–"
    return f"{v:.1f} ± {std:.1f}" if std is not None else f"{v:.1f}"


def markdown_table(agg: Sequence[dict]) -> str:
    """A Markdown table of aggregated rows (ours and published, labelled)."""
    head = ("| dataset | split | class set | setting | method | source | selection | seeds | S | U | H | ZSL | top-1 "
            "| top-5 |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in agg:
        src = "ours" if r["source"] == "ours" else "published"
        cells = [r["dataset"], r["split"], r.get("class_set") or "", r["setting"], r["method"], src,
                 r.get("selection") or "",
                 str(r["n"] or "")]
        cells += [_fmt(r[c], r[c + "_std"]) for c in METRIC_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_markdown(records: Sequence[ResultRecord], title: str = "zsl-scale results") -> str:
    """A Markdown report for one run's results (used by ``zsl-scale demo``), published numbers beside."""
    rows = [result_row(r) for r in records]
    ours = {(r["dataset"].lower(), r["setting"]) for r in rows}
    pub = [p for p in published_rows() if (p["dataset"].lower(), p["setting"]) in ours]
    agg = aggregate(rows + pub)
    text = [f"# {title}", "", comparison_markdown(agg), "## All rows", "", markdown_table(agg)]
    groups = [(r, r.metrics.per_group) for r in records if r.metrics.per_group]
    for rec, per_group in groups:
        text += [f"## Accuracy per WordNet group: {rec.dataset} {rec.split} ({rec.method}, seed {rec.seed})", "",
                 "| group | top-1 |", "|---|---|"]
        text += [f"| {g} | {v:.1f} |" for g, v in sorted(per_group.items())] + [""]
    if pub:
        sources = sorted({p["source"].removeprefix("published: ") for p in pub})
        text += ["Published numbers: " + "; ".join(sources) + ".", ""]
    return "\n".join(text)


def write_csv(path: Path, rows: Sequence[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CSV_FIELDS), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def build_leaderboard(results_dirs: Sequence[str | Path], out_dir: str | Path) -> dict[str, Path]:
    """Write ``leaderboard.csv``, ``leaderboard.md``, ``index.html`` and PNG plots into ``out_dir``."""
    loaded = load_results(results_dirs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ours = [result_row(rec, path) for rec, path in loaded]
    datasets = {r["dataset"].lower() for r in ours}
    pub = [p for p in published_rows() if p["dataset"].lower() in datasets]  # only where they compare with ours
    agg = aggregate(ours + pub)
    written = {"csv": out / "leaderboard.csv", "markdown": out / "leaderboard.md", "html": out / "index.html"}
    write_csv(written["csv"], ours + pub)
    compare = comparison_markdown(agg)
    atomic_write_text(written["markdown"], "# zsl-scale leaderboard\n\n" + (compare + "\n## All rows\n\n" if compare
                                                                             else "") + markdown_table(agg))
    plots = render_all(agg, [rec for rec, _ in loaded], out)
    written.update(plots)
    atomic_write_text(written["html"], render_html(agg, plots, len(loaded)))
    return written


def render_html(agg: Sequence[dict], plots: dict[str, Path], n_files: int) -> str:
    """The static leaderboard page: comparison + full tables (sortable) and the PNG plots (relative links)."""
    esc = html.escape
    head = ["dataset", "split", "class set", "setting", "method", "source", "selection", "seeds", *METRIC_COLUMNS]
    rows = []
    for r in agg:
        cls = "ours" if r["source"] == "ours" else "published"
        src = "ours" if cls == "ours" else f'<abbr title="{esc(r["source"])}">published</abbr>'
        cells = [esc(str(r.get(c) or "")) for c in ("dataset", "split", "class_set", "setting", "method")]
        cells += [src, esc(r.get("selection") or ""), esc(str(r["n"] or ""))]
        cells += [esc(_fmt(r[c], r[c + "_std"])) for c in METRIC_COLUMNS]
        rows.append(f'<tr class="{cls}">' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    figs = "".join(f'<figure><img src="{esc(p.name)}" alt="{esc(name)}"><figcaption>{esc(name)}</figcaption></figure>'
                   for name, p in plots.items())
    sources = sorted({r["source"].removeprefix("published: ") for r in agg if r["source"] != "ours"})
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>zsl-scale leaderboard</title>
<link rel="icon" href="data:,">
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}tr.published{{color:#666;font-style:italic}}
figure{{display:inline-block;margin:1em}}img{{max-width:900px}}td.best{{font-weight:bold;background:#e8f4e8}}
th{{cursor:pointer}}</style></head><body>
<h1>zsl-scale leaderboard</h1>
<p>{n_files} results files. Accuracies are per-class mean top-1 in percent; rows in grey italics are
<b>published</b> numbers, not ours (other features and protocols: context, not competitors). The
<i>selection</i> column says how each row's epochs and hyper-parameters were chosen: <i>validation</i> (clean),
<i>fixed</i> (set in advance, e.g. another code's setting), <i>test-oracle</i> (best test epoch),
<i>published</i> (copied from a paper), <i>external</i> (a prediction file made elsewhere, scored here: shown,
never marked best); rows of different selection are never averaged together. ImageNet
numbers over different class sets (a split restricted to a release's <i>universe</i>, a <i>test ≤ N/class</i>
subsample, a backbone with <i>pretraining overlap</i>) carry a <i>class set</i> label and get their own column.
Click a column header to sort.</p>
{comparison_html(agg)}
<h2>All rows</h2>
<table class="sortable"><thead><tr>{"".join(f"<th>{esc(h)}</th>" for h in head)}</tr></thead><tbody>
{chr(10).join(rows)}
</tbody></table>
{figs}
<p>Published sources: {esc("; ".join(sources)) or "none"}.</p>
{SORT_SCRIPT}
</body></html>
"""
