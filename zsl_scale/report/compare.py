"""The leaderboard as a comparison: methods × benchmarks (S/U/H, ZSL) and methods × ImageNet splits.

Rows are (method, source, selection, seeds); columns are metrics per benchmark or ImageNet split; the best
of *our* values in each column is marked (published rows use other features and protocols, so they are
context, never "best"). Every row says how its hyper-parameters or epochs were chosen: ``validation``,
``fixed``, ``test-oracle`` or ``published`` (with the paper's own selection where known).

A value over several seeds reads ``mean ± sd`` (sample sd over the seeds, their number in the *seeds*
column; ``2–3`` when columns have different counts), so a reader can tell a gap between methods from
seed noise; one seed reads as the bare value. "Best" compares the means.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from zsl_scale.report.plots import IMAGENET_SPLIT_ORDER
from zsl_scale.results import ResultRecord

FIRST = 4  # index of the first value column in a comparison row (after method, source, selection, seeds)

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


def class_set_label(eval_set: dict | None) -> str:
    """What a result's number is over, when it is not the default (the fall-2011 split, every test image, a
    backbone clean of the unseen classes): universe and class counts, test subsample, pretraining, distractor
    splits. Results with different labels are different columns and rows, never averaged or ranked together."""
    if not eval_set:
        return ""
    tags = []
    if eval_set.get("universe", "fall11") != "fall11":
        tags.append(f"universe {eval_set['universe']}: {eval_set.get('unseen_classes', '?'):,} unseen / "
                    f"{eval_set.get('seen_classes', '?'):,} seen")
    if eval_set.get("test_per_class"):
        tags.append(f"test ≤ {eval_set['test_per_class']}/class")
    if eval_set.get("split_images") == "distractors":
        tags.append("split classes as distractors, U on held-out seen classes")
    if str(eval_set.get("pretraining", "")).startswith("pretraining"):
        tags.append(eval_set["pretraining"])
    return "; ".join(tags)


def _is_imagenet(dataset: str) -> bool:
    return dataset.lower().startswith("imagenet")


@dataclass(frozen=True)
class Cell:
    """One comparison value: the mean over seeds, its sample sd (None for one seed) and the seed count."""

    mean: float
    sd: float | None = None
    n: int | None = None

    def __str__(self) -> str:
        return f"{self.mean:.1f}" if self.sd is None else f"{self.mean:.1f} ± {self.sd:.1f}"


def _put(table: dict[tuple, dict[str, Cell]], key: tuple, col: str, r: dict, metric: str) -> None:
    table[key][col] = Cell(float(r[metric]), r.get(f"{metric}_std"), r.get("n"))


def comparison_tables(agg: Sequence[dict]) -> dict[str, tuple[list[str], list[list[object]]]]:
    """``{title: (header, rows)}``: rows are [method, source, selection, seeds, Cell or None…]."""
    bench: dict[tuple, dict[str, Cell]] = defaultdict(dict)
    imnet: dict[tuple, dict[str, Cell]] = defaultdict(dict)
    for r in agg:
        key = (r["method"], "ours" if r["source"] == "ours" else "published", r.get("selection") or "")
        if _is_imagenet(r["dataset"]):
            if r["setting"] == "gzsl" and (r["U"] is not None or r["top1"] is not None):
                col = r["split"] + (f" [{r['class_set']}]" if r.get("class_set") else "")
                _put(imnet, key, col, r, "U" if r["U"] is not None else "top1")
        elif r["setting"] == "gzsl":
            ds = r["dataset"] + (f" [{r['class_set']}]" if r.get("class_set") else "")
            for m in ("S", "U", "H", "zsl"):
                if r.get(m) is not None:
                    _put(bench, key, f"{ds} {m}", r, m)
        elif r["setting"] == "zsl" and r.get("zsl") is not None:
            _put(bench, key, f"{r['dataset']} zsl", r, "zsl")
    out = {}
    for title, table, order in (("Methods × benchmarks (GZSL S / U / H, ZSL)", bench, _bench_order),
                                ("Methods × ImageNet splits (unseen top-1)", imnet, _split_order)):
        if not any(k[1] == "ours" for k in table):
            continue
        cols = sorted({c for v in table.values() for c in v}, key=order)
        rows = [[*k, _seeds(v.values()), *(v.get(c) for c in cols)] for k, v in table.items()]
        rows.sort(key=lambda r: (r[1] != "ours", r[2] == "external", -(_last_h(r, cols) or -1.0), r[0]))
        out[title] = (["method", "source", "selection", "seeds", *cols], rows)
    return out


def _seeds(cells: Iterable[Cell]) -> str:
    """The seed count(s) of a row: ``3``, ``1–3`` when its columns differ, empty for published rows."""
    ns = sorted({c.n for c in cells if c.n})
    return "" if not ns else str(ns[0]) if len(ns) == 1 else f"{ns[0]}–{ns[-1]}"


def _bench_order(col: str) -> tuple:
    ds, m = col.rsplit(" ", 1)
    return (ds.lower(), "SUHz".index(m[0]))


def _split_order(col: str) -> tuple:
    base = col.split(" [")[0].partition("@")[0]
    return (IMAGENET_SPLIT_ORDER.index(base) if base in IMAGENET_SPLIT_ORDER else 99, col)


def _last_h(row: list[object], cols: list[str]) -> float | None:
    """The first H (or, on ImageNet, the first split) value of a row, for the default order."""
    for c, v in zip(cols, row[FIRST:], strict=True):
        if (c.endswith((" H", "]")) or " " not in c) and isinstance(v, Cell):
            return v.mean
    return None


def _ranked(r: list[object]) -> bool:
    """Rows that compete for "best": ours, scored from our own training (not a prediction file made elsewhere,
    whose selection we cannot check)."""
    return r[1] == "ours" and r[2] != "external"


def best_of_ours(rows: list[list[object]], n_cols: int) -> list[float | None]:
    """Per value column, the best mean of our ranked rows (None when we have no value there)."""
    best: list[float | None] = []
    for j in range(FIRST, FIRST + n_cols):
        vals = [r[j].mean for r in rows if _ranked(r) and isinstance(r[j], Cell)]
        best.append(max(vals) if vals else None)
    return best


def _is_best(r: list[object], j: int, best: list[float | None]) -> bool:
    v, b = r[j], best[j - FIRST] if j >= FIRST else None
    return _ranked(r) and b is not None and isinstance(v, Cell) and v.mean == b


def _cell(v: object) -> str:
    return "–" if v is None else str(v)


def comparison_markdown(agg: Sequence[dict]) -> str:
    """The comparison tables in Markdown, best of ours in bold."""
    parts = []
    for title, (head, rows) in comparison_tables(agg).items():
        best = best_of_ours(rows, len(head) - FIRST)
        lines = [f"## {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows:
            cells = [f"**{_cell(v)}**" if _is_best(r, j, best) else _cell(v) for j, v in enumerate(r)]
            lines.append("| " + " | ".join(cells) + " |")
        parts.append("\n".join(lines) + "\n\nBold: the best of our rows per column (by the mean; published rows use "
                     "other features and protocols: context, not competitors here). Several seeds: mean ± sd "
                     "over the seeds.\n")
    return "\n".join(parts)


def comparison_html(agg: Sequence[dict]) -> str:
    """The comparison tables as sortable HTML (click a header), best of ours marked ``class="best"``."""
    esc, parts = html.escape, []
    for title, (head, rows) in comparison_tables(agg).items():
        best = best_of_ours(rows, len(head) - FIRST)
        body = []
        for r in rows:
            cells = [f'<td{" class=best" if _is_best(r, j, best) else ""}>{esc(_cell(v))}</td>'
                     for j, v in enumerate(r)]
            body.append(f'<tr class="{"ours" if r[1] == "ours" else "published"}">{"".join(cells)}</tr>')
        parts.append(f'<h2>{esc(title)}</h2>\n<table class="sortable"><thead><tr>'
                     + "".join(f'<th title="click to sort">{esc(h)}</th>' for h in head)
                     + "</tr></thead><tbody>\n" + "\n".join(body) + "\n</tbody></table>")
    return "\n".join(parts)
