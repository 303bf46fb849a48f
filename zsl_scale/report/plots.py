"""PNG plots for the leaderboard (matplotlib, Agg backend: no display needed on a cluster or in CI)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from zsl_scale.core import atomic_path
from zsl_scale.results import ResultRecord

if TYPE_CHECKING:
    from matplotlib.figure import Figure

IMAGENET_SPLIT_ORDER = ("2H", "3H", "M500", "M1K", "M5K", "L500", "L1K", "L5K", "All")
_PUB = "#bbbbbb"
_PUB_SHADES = ("#9a9a9a", "#c8c8c8", "#e4e4e4", "#7a7a7a")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _is_imagenet(dataset: str) -> bool:
    return dataset.lower().startswith("imagenet")


def render_all(agg: Sequence[dict], records: Sequence[ResultRecord], out: Path) -> dict[str, Path]:
    """Render every plot that has data; returns ``{title: path}`` in page order."""
    plots: dict[str, Path] = {}
    for title, name, fn in (("ImageNet GZSL top-1 per split", "imagenet_splits.png", imagenet_splits),
                            ("S / U / H per benchmark", "suh.png", suh_per_benchmark)):
        fig = fn(agg)
        if fig is not None:
            plots[title] = _save(fig, out / name)
    fig = per_group(records)
    if fig is not None:
        plots["Accuracy per WordNet group"] = _save(fig, out / "groups.png")
    return plots


def _save(fig: Figure, path: Path) -> Path:
    """Save a figure atomically as PNG, then free it."""
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    _plt().close(fig)
    return path


def imagenet_splits(agg: Sequence[dict]) -> Figure | None:
    """Grouped bars of unseen top-1 per ImageNet split (like the paper's Figure 7)."""
    rows = [r for r in agg if _is_imagenet(r["dataset"]) and r["setting"] == "gzsl"]
    rows = [r for r in rows if (r["U"] if r["U"] is not None else r["top1"]) is not None]
    if not rows:
        return None
    splits = sorted({r["split"] for r in rows},
                    key=lambda s: (IMAGENET_SPLIT_ORDER.index(s) if s in IMAGENET_SPLIT_ORDER else 99, s))
    series: dict[str, dict[str, float]] = defaultdict(dict)
    for r in rows:
        label = f"{r['dataset']} {r['method']}" + ("" if r["source"] == "ours" else " (published)")
        series[label][r["split"]] = r["U"] if r["U"] is not None else r["top1"]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(splits) * max(1, len(series)) ** 0.5), 3.5))
    width = 0.8 / len(series)
    for i, (label, vals) in enumerate(sorted(series.items())):
        xs = [j + i * width for j, s in enumerate(splits) if s in vals]
        ys = [vals[s] for s in splits if s in vals]
        bars = ax.bar(xs, ys, width, label=label, color=_PUB if "(published)" in label else None)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks([j + width * (len(series) - 1) / 2 for j in range(len(splits))], splits)
    honest_axis(ax, [v for vals in series.values() for v in vals.values()])
    ax.set_ylabel("top-1 on unseen classes (%)")
    ax.set_title("ImageNet GZSL: 1K seen classes + split as search space")
    ax.legend(fontsize=7)
    return fig


def honest_axis(ax, values: Sequence[float]) -> None:
    """A percent axis from 0: to 100 when values reach past 50, else to the data's range (at least 1).

    Matplotlib's autoscale around all-zero bars draws an empty frame with a −0.04…0.04 axis; a zero
    result is a result, so the axis starts at 0 and the plot says so in words.
    """
    top = max(values, default=0.0)
    ax.set_ylim(0, 100 if top > 50 else max(1.0, top * 1.2))
    if top == 0:
        ax.text(0.5, 0.5, "every value is 0.0 %", transform=ax.transAxes, ha="center", va="center", color="#a00")


def suh_per_benchmark(agg: Sequence[dict]) -> Figure | None:
    """One panel per non-ImageNet benchmark: S, U, H bars for ours and published methods."""
    rows = [r for r in agg if not _is_imagenet(r["dataset"]) and r["setting"] == "gzsl" and r["H"] is not None]
    by_ds: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_ds[r["dataset"]].append(r)
    by_ds = {ds: rs for ds, rs in by_ds.items() if any(r["source"] == "ours" for r in rs)}  # ours vs published
    if not by_ds:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, len(by_ds), figsize=(4.2 * len(by_ds), 3.6), squeeze=False)
    for ax, (ds, rs) in zip(axes[0], sorted(by_ds.items()), strict=True):
        width = 0.8 / len(rs)
        n_pub = 0
        for i, r in enumerate(rs):
            pub = r["source"] != "ours"
            vals = [r[m] or 0.0 for m in ("S", "U", "H")]
            color = _PUB_SHADES[n_pub % len(_PUB_SHADES)] if pub else None
            n_pub += pub
            bars = ax.bar([j + i * width for j in range(3)], vals, width,
                          label=f"{r['method']}" + (" (published)" if pub else f" (ours, {r['split']})"),
                          color=color, hatch="//" if pub else None, edgecolor="#555" if pub else None)
            ax.bar_label(bars, fmt="%.1f", fontsize=6)
        ax.set_xticks([j + width * (len(rs) - 1) / 2 for j in range(3)], ["S", "U", "H"])
        ax.set_title(ds)
        ax.set_ylim(0, 100)
        ax.legend(fontsize=6)
    axes[0][0].set_ylabel("per-class mean top-1 (%)")
    return fig


def per_group(records: Sequence[ResultRecord]) -> Figure | None:
    """Horizontal bars of per-WordNet-group top-1, averaged over seeds per (dataset, split, method)."""
    acc: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for rec in records:
        for g, v in rec.metrics.per_group.items():
            acc[f"{rec.dataset} {rec.split} {rec.method}"][g].append(v)
    if not acc:
        return None
    groups = sorted({g for d in acc.values() for g in d})
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(groups) * len(acc) + 1.2))
    height = 0.8 / len(acc)
    for i, (label, d) in enumerate(sorted(acc.items())):
        ys = [j + i * height for j, g in enumerate(groups) if g in d]
        ax.barh(ys, [sum(d[g]) / len(d[g]) for g in groups if g in d], height, label=label)
    ax.set_yticks([j + height * (len(acc) - 1) / 2 for j in range(len(groups))], groups, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("per-class mean top-1 (%)")
    ax.legend(fontsize=7)
    return fig
