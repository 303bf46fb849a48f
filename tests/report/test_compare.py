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
    assert "| SJE | ours | fixed | 1 | 60.0 | **20.0** | **30.0** | 40.0 |" in md
    assert "| ESZSL | ours | validation | 1 | **65.6** | 11.3 | 19.3 | **43.0** |" in md
    assert "Methods × ImageNet splits" in md and "| ESZSL | ours | validation | 1 | **0.0** |" in md
    assert "CUB" not in md  # published CUB/SUN/AWA rows only where we have results on those benchmarks
    page = out["html"].read_text()
    assert 'class="sortable"' in page and "<td class=best>30.0</td>" in page and "addEventListener" in page


def test_several_seeds_read_mean_plus_minus_sd_with_their_count(tmp_path: Path) -> None:
    """Over seeds a cell is ``mean ± sd`` (sample sd), the row says how many seeds; best compares means."""
    d = tmp_path / "r"
    for seed, (h, u) in enumerate([(30.0, 20.0), (34.0, 24.0), (38.0, 22.0)]):  # H mean 34, sd 4; U mean 22, sd 2
        rec = _rec("ALE", "flo", "xlsa17", "validation", S=60.0 + seed, U=u, H=h)
        write_result(rec.model_copy(update={"seed": seed}), d)
    write_result(_rec("SJE", "flo", "xlsa17", "validation", S=50.0, U=23.0, H=33.0), d)  # one seed: bare values
    for seed, u in enumerate([1.0, 3.0]):
        write_result(_rec("ESZSL", "imagenet21k", "2H", "fixed", U=u).model_copy(update={"seed": seed}), d)
    write_result(_rec("ESZSL", "imagenet21k", "3H", "fixed", U=0.5), d)
    out = build_leaderboard([d], tmp_path / "b")
    md = out["markdown"].read_text()
    assert "| ALE | ours | validation | 3 | **61.0 ± 1.0** | 22.0 ± 2.0 | **34.0 ± 4.0** |" in md
    assert "| SJE | ours | validation | 1 | 50.0 | **23.0** | 33.0 |" in md  # 23 > 22.0: best by mean
    assert "| ESZSL | ours | fixed | 1–2 | **2.0 ± 1.4** | **0.5** |" in md  # columns with 2 and 1 seeds
    assert "<td class=best>34.0 ± 4.0</td>" in out["html"].read_text()


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
