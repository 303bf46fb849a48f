"""The comparison view: methods side by side, best of ours marked, selection labelled, honest axes."""

from __future__ import annotations

from pathlib import Path

from zsl_scale.report.compare import comparison_markdown, selection_label
from zsl_scale.report.leaderboard import build_leaderboard
from zsl_scale.report.plots import _plt, honest_axis
from zsl_scale.results import Metrics, ResultRecord, write_result


def _rec(method: str, dataset: str, split: str, source: str, **m) -> ResultRecord:
    selection = "validation" if source.startswith("validation") else "fixed"
    return ResultRecord(dataset=dataset, split=split, method=method, seed=0, metrics=Metrics(**m), config={},
                        selection=selection, selection_source=source, extra={"selection": {"source": source}})


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


def test_schema_1_0_files_get_their_selection_from_the_recorded_source(tmp_path: Path) -> None:
    """Files written before ``selection`` existed are read, labelled from the epochs' source they recorded."""
    import json

    from zsl_scale.results import read_result

    cases = (("validation of runs/a (seed 0)", "validation"), ("fixed by config", "fixed"), ("", "fixed"))
    for source, expected in cases:
        doc = _rec("m", "flo", "x", "validation", H=1.0).model_dump(mode="json")
        doc.update(schema_version="1.0", extra={"selection": {"source": source}} if source else {})
        doc.pop("selection"), doc.pop("selection_source")
        (tmp_path / "old.json").write_text(json.dumps(doc))
        rec = read_result(tmp_path / "old.json")
        assert selection_label(rec) == expected and rec.selection_source == (source or "not recorded (schema 1.0 file)")


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
