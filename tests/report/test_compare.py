"""The comparison view: methods side by side, best of ours marked, selection labelled, honest axes."""

from __future__ import annotations

from pathlib import Path

from zsl_scale.report.compare import comparison_markdown, selection_label
from zsl_scale.report.leaderboard import build_leaderboard
from zsl_scale.report.plots import _plt, honest_axis
from zsl_scale.results import Metrics, ResultRecord, write_result


def _rec(method: str, dataset: str, split: str, source: str, **m) -> ResultRecord:
    return ResultRecord(dataset=dataset, split=split, method=method, seed=0, metrics=Metrics(**m), config={},
                        extra={"selection": {"source": source}})


def test_methods_side_by_side_best_marked_and_labelled(tmp_path: Path) -> None:
    d = tmp_path / "r"
    write_result(_rec("ESZSL", "flo", "xlsa17", "validation", S=65.6, U=11.3, H=19.3, zsl=43.0), d)
    write_result(_rec("SJE", "flo", "xlsa17", "fixed by config", S=60.0, U=20.0, H=30.0, zsl=40.0), d)
    write_result(_rec("ESZSL", "imagenet21k", "2H", "validation", U=0.0), d)
    out = build_leaderboard([d], tmp_path / "b")
    md = out["markdown"].read_text()
    assert "| SJE | ours | fixed | 60.0 | **20.0** | **30.0** | 40.0 |" in md
    assert "| ESZSL | ours | validation | **65.6** | 11.3 | 19.3 | **43.0** |" in md
    assert "Methods × ImageNet splits" in md and "| ESZSL | ours | validation | **0.0** |" in md
    assert "CUB" not in md  # published CUB/SUN/AWA rows only where we have results on those benchmarks
    page = out["html"].read_text()
    assert 'class="sortable"' in page and "<td class=best>30.0</td>" in page and "addEventListener" in page


def test_selection_label_reads_the_protocols_source() -> None:
    assert selection_label(_rec("m", "flo", "x", "validation of runs/a (seed 0)", H=1.0)) == "validation"
    assert selection_label(_rec("m", "flo", "x", "fixed by config", H=1.0)) == "fixed"
    assert selection_label(_rec("m", "flo", "x", "test-oracle (authors' code)", H=1.0)) == "test-oracle"


def test_all_zero_plot_has_a_zero_based_axis_and_says_so() -> None:
    plt = _plt()
    fig, ax = plt.subplots()
    ax.bar([0], [0.0])
    honest_axis(ax, [0.0])
    assert ax.get_ylim() == (0.0, 1.0) and any("every value is 0.0" in t.get_text() for t in ax.texts)
    honest_axis(ax, [72.0])
    assert ax.get_ylim() == (0.0, 100.0)
    plt.close(fig)
    assert comparison_markdown([]) == ""
