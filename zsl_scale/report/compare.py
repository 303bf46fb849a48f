"""The leaderboard as a comparison: methods × benchmarks (S/U/H, ZSL) and methods × ImageNet splits.

Rows are (method, source, selection); columns are metrics per benchmark or ImageNet split; the best of
*our* values in each column is marked (published rows use other features and protocols, so they are
context, never "best"). Every row says how its hyper-parameters or epochs were chosen: ``validation``,
``fixed``, ``test-oracle`` or ``published`` (with the paper's own selection where known).
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Sequence

from zsl_scale.report.plots import IMAGENET_SPLIT_ORDER
from zsl_scale.results import ResultRecord

SORT_SCRIPT = """<script>
document.querySelectorAll('table.sortable th').forEach((th, i) => th.addEventListener('click', () => {
  const body = th.closest('table').tBodies[0], asc = th.dataset.asc !== '1';
  const key = r => { const v = parseFloat(r.cells[i].innerText); return isNaN(v) ? r.cells[i].innerText : v; };
  const rank = r => typeof key(r) === 'number' ? 0 : 1;  // numbers first, then text (– last)
  [...body.rows].sort((a, b) => rank(a) - rank(b) || (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (asc ? 1 : -1))
    .forEach(r => body.appendChild(r));
  th.closest('tr').querySelectorAll('th').forEach(h => delete h.dataset.asc);
  th.dataset.asc = asc ? '1' : '0';
}));
</script>"""


def selection_label(rec: ResultRecord) -> str:
    """How a results file's epochs/hyper-parameters were chosen (schema 1.1's ``selection``; 1.0 files are
    upgraded on reading, see :mod:`zsl_scale.results.schema`)."""
    return rec.selection


def _is_imagenet(dataset: str) -> bool:
    return dataset.lower().startswith("imagenet")


def comparison_tables(agg: Sequence[dict]) -> dict[str, tuple[list[str], list[list[object]]]]:
    """``{title: (header, rows)}``: rows are [method, source, selection, values…] (None = no value)."""
    bench: dict[tuple, dict[str, float | None]] = defaultdict(dict)
    imnet: dict[tuple, dict[str, float | None]] = defaultdict(dict)
    for r in agg:
        key = (r["method"], "ours" if r["source"] == "ours" else "published", r.get("selection") or "")
        if _is_imagenet(r["dataset"]):
            if r["setting"] == "gzsl":
                imnet[key][r["split"]] = r["U"] if r["U"] is not None else r["top1"]
        elif r["setting"] == "gzsl":
            for m in ("S", "U", "H", "zsl"):
                if r.get(m) is not None:
                    bench[key][f"{r['dataset']} {m}"] = r[m]
        elif r["setting"] == "zsl" and r.get("zsl") is not None:
            bench[key][f"{r['dataset']} zsl"] = r["zsl"]
    out = {}
    for title, table, order in (("Methods × benchmarks (GZSL S / U / H, ZSL)", bench, _bench_order),
                                ("Methods × ImageNet splits (unseen top-1)", imnet, _split_order)):
        if not any(k[1] == "ours" for k in table):
            continue
        cols = sorted({c for v in table.values() for c in v}, key=order)
        rows = [[*k, *(v.get(c) for c in cols)] for k, v in table.items()]
        rows.sort(key=lambda r: (r[1] != "ours", -(_last_h(r, cols) or -1.0), r[0]))
        out[title] = (["method", "source", "selection", *cols], rows)
    return out


def _bench_order(col: str) -> tuple:
    ds, m = col.rsplit(" ", 1)
    return (ds.lower(), "SUHz".index(m[0]))


def _split_order(col: str) -> tuple:
    return (IMAGENET_SPLIT_ORDER.index(col) if col in IMAGENET_SPLIT_ORDER else 99, col)


def _last_h(row: list[object], cols: list[str]) -> float | None:
    """The first H (or, on ImageNet, the first split) value of a row, for the default order."""
    for c, v in zip(cols, row[3:], strict=True):
        if (c.endswith(" H") or " " not in c) and isinstance(v, float | int):
            return float(v)
    return None


def best_of_ours(rows: list[list[object]], n_cols: int) -> list[float | None]:
    """Per value column, the best of our rows (None when we have no value there)."""
    best: list[float | None] = []
    for j in range(3, 3 + n_cols):
        vals = [float(r[j]) for r in rows if r[1] == "ours" and isinstance(r[j], float | int)]
        best.append(max(vals) if vals else None)
    return best


def _cell(v: object) -> str:
    return "–" if v is None else f"{v:.1f}" if isinstance(v, float | int) else str(v)


def comparison_markdown(agg: Sequence[dict]) -> str:
    """The comparison tables in Markdown, best of ours in bold."""
    parts = []
    for title, (head, rows) in comparison_tables(agg).items():
        best = best_of_ours(rows, len(head) - 3)
        lines = [f"## {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows:
            cells = [_cell(v) for v in r]
            for j, b in enumerate(best):
                if r[1] == "ours" and b is not None and r[3 + j] == b:
                    cells[3 + j] = f"**{cells[3 + j]}**"
            lines.append("| " + " | ".join(cells) + " |")
        parts.append("\n".join(lines) + "\n\nBold: the best of our rows per column (published rows use other "
                     "features and protocols: context, not competitors here).\n")
    return "\n".join(parts)


def comparison_html(agg: Sequence[dict]) -> str:
    """The comparison tables as sortable HTML (click a header), best of ours marked ``class="best"``."""
    esc, parts = html.escape, []
    for title, (head, rows) in comparison_tables(agg).items():
        best = best_of_ours(rows, len(head) - 3)
        body = []
        for r in rows:
            cells = []
            for j, v in enumerate(r):
                is_best = j >= 3 and r[1] == "ours" and best[j - 3] is not None and v == best[j - 3]
                cells.append(f'<td{" class=best" if is_best else ""}>{esc(_cell(v))}</td>')
            body.append(f'<tr class="{"ours" if r[1] == "ours" else "published"}">{"".join(cells)}</tr>')
        parts.append(f'<h2>{esc(title)}</h2>\n<table class="sortable"><thead><tr>'
                     + "".join(f'<th title="click to sort">{esc(h)}</th>' for h in head)
                     + "</tr></thead><tbody>\n" + "\n".join(body) + "\n</tbody></table>")
    return "\n".join(parts)
