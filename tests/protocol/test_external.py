"""Prediction files on Flowers-102: ESZSL's own test outputs reproduce its numbers; every bad file is one error.

``zsl-scale evaluate flo --predictions FILE`` scores a file made elsewhere with the function that scores the
built-in methods. A file written from ESZSL's test-phase logits must give exactly ESZSL's S, U and H (and a
``topk`` file of the same ranking the same), labelled ``selection: external`` with the file's sha256, and on
the leaderboard beside ESZSL without being averaged with it or marked best.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import run_cli
from zsl_scale.cli.small import PAPER_CONFIG
from zsl_scale.core import load_config, sha256_file
from zsl_scale.datasets import resolve_benchmark
from zsl_scale.results import read_result


def write_predictions(path: Path, image_ids: list[str], classes: list[str] | None = None,
                      scores: np.ndarray | None = None, topk: list[list[str]] | None = None,
                      metadata: dict[str, str] | None = None) -> Path:
    """A prediction file as docs/methods.md tells users to write one."""
    cols: dict[str, object] = {"image_id": image_ids}
    if scores is not None:
        cols["scores"] = [list(map(float, row)) for row in scores]
    if topk is not None:
        cols["topk"] = topk
    meta = dict(metadata or {})
    if classes is not None:
        meta["classes"] = json.dumps(classes)
    pq.write_table(pa.table(cols).replace_schema_metadata(meta), path)
    return path


@pytest.fixture(scope="module")
def flo_test() -> tuple[list[str], list[str], np.ndarray]:
    """(test image ids: test_seen then test_unseen, class names, labels of those images)."""
    bench = resolve_benchmark("flo")
    rows = np.concatenate([bench.splits["test_seen"], bench.splits["test_unseen"]])
    return [bench.image_ids[r] for r in rows], list(bench.class_names), bench.labels[rows]


def test_eszsl_outputs_reproduce_its_numbers_exactly(tmp_path: Path) -> None:
    import torch

    from zsl_scale.methods import get_method, scores, with_grid
    from zsl_scale.protocol import fit_selected, make_phase, run_method

    bench = resolve_benchmark("flo")
    # ESZSL as `zsl-scale evaluate flo --method eszsl`, its grid narrowed to two points around its usual
    # choice (γ 100, λ 0.001 or 0.1) and one validation fold, to keep the test short
    cfg = load_config(PAPER_CONFIG, ["eval.val_folds=1"], benchmark="flo", seed=0, device="cpu")
    spec = with_grid(get_method("eszsl"), {"gamma": 100.0, "lam": [0.001, 0.1]})
    (rec,) = run_method(spec, cfg, tmp_path / "eszsl", log=lambda _m: None, bench=bench)
    fit = fit_selected(spec, bench, cfg, 0, torch.device("cpu"), log=lambda _m: None)  # its test-phase fit again
    space = np.union1d(fit.data.seen, fit.data.unseen)
    logits = torch.cat([scores(fit.gzsl, fit.data.x_seen, space), scores(fit.gzsl, fit.data.x_unseen, space)])
    phase = make_phase(bench, "test", cfg, 0, 0)  # the rows of fit.data's test images, in its order
    ids = [bench.image_ids[r] for r in np.concatenate([phase.eval_seen_rows, phase.eval_unseen_rows])]
    names = [bench.class_names[c] for c in space]
    perm = np.random.default_rng(0).permutation(len(names))  # any stated class order scores the same
    by_scores = write_predictions(tmp_path / "eszsl.parquet", ids, [names[j] for j in perm],
                                  logits.numpy()[:, perm], metadata={"method": "ESZSL-file"})
    top5 = np.argsort(-logits.numpy(), axis=1, kind="stable")[:, :5]
    by_topk = write_predictions(tmp_path / "eszsl-top5.parquet", ids, topk=[[names[j] for j in r] for r in top5])
    board_in = [tmp_path / "eszsl/results"]
    for path in (by_scores, by_topk):
        out = tmp_path / f"scored-{path.stem}"
        assert run_cli(["evaluate", "flo", "--predictions", str(path), "--out", str(out)]) == 0
        (res,) = (out / "results").glob("*.json")
        ext = read_result(res)
        assert (ext.metrics.S, ext.metrics.U, ext.metrics.H) == (rec.metrics.S, rec.metrics.U, rec.metrics.H)
        assert ext.metrics.per_class == rec.metrics.per_class
        assert ext.selection == "external" and ext.manifests["predictions"] == sha256_file(path)
        assert ext.extra["predictions"]["format"] == ("scores" if path == by_scores else "topk")
        assert 0 < ext.metrics.top_k["top1"] <= ext.metrics.top_k["top5"] <= 100
        board_in.append(out / "results")
    if rec.extra["selection"]["zsl"]["hyper"] == rec.extra["selection"]["gzsl"]["hyper"]:
        assert ext.metrics.zsl == rec.metrics.zsl  # ZSL from the same fit: the unseen columns' arg-max
    named = read_result(tmp_path / "scored-eszsl/results/flo__xlsa17__ESZSL-file__gzsl__seed0.json")
    assert named.method == "ESZSL-file"  # the file's `method` metadata names it
    assert run_cli(["leaderboard", *map(str, board_in), "--out", str(tmp_path / "board")]) == 0
    md = (tmp_path / "board/leaderboard.md").read_text()
    sha = sha256_file(by_scores)[:12]
    assert f"| ESZSL-file [predictions {sha}] | ours | external | 1 |" in md
    assert "| ESZSL | ours | validation | 1 |" in md
    view = md.split("## All rows")[0]
    assert not any(line.startswith("| ESZSL-file") and "**" in line for line in view.splitlines())


def _bad(case: str, path: Path, ids: list[str], names: list[str]) -> Path:
    """A prediction file with exactly one thing wrong."""
    rng = np.random.default_rng(0)
    s = rng.normal(size=(len(ids), len(names))).astype(np.float32)
    if case == "unknown image":
        return write_predictions(path, [*ids, "jpg/not_a_test_image.jpg"], names, np.vstack([s, s[:1]]))
    if case == "missing image":
        return write_predictions(path, ids[:-1], names, s[:-1])
    if case == "duplicate row":
        return write_predictions(path, [*ids, ids[0]], names, np.vstack([s, s[:1]]))
    if case == "wrong class set":
        return write_predictions(path, ids, [*names[:-1], "not_a_flower"], s)
    if case == "missing class":
        return write_predictions(path, ids, names[:-1], s[:, :-1])
    if case == "NaN":
        s[5, 3] = np.nan
        return write_predictions(path, ids, names, s)
    if case == "topk class":
        return write_predictions(path, ids, topk=[["daisy"]] * len(ids))
    if case == "no classes":
        return write_predictions(path, ids, None, s)
    if case == "short row":
        pq.write_table(pa.table({"image_id": ids, "scores": [[0.0]] * len(ids)}).replace_schema_metadata(
            {"classes": json.dumps(names)}), path)
        return path
    if case == "no scores":
        return write_predictions(path, ids)
    path.write_text("not parquet")
    return path


@pytest.mark.parametrize(("case", "message"), [
    ("unknown image", "image 'jpg/not_a_test_image.jpg' is not a test image of flo"),
    ("missing image", "lacks 1 test image(s) of flo"),
    ("duplicate row", "appears more than once"),
    ("wrong class set", "class 'not_a_flower' is not one of them"),
    ("missing class", "it lacks class"),
    ("NaN", "has a NaN or infinite score"),
    ("topk class", "ranks class 'daisy', which is not one of the 102 classes"),
    ("no classes", "no 'classes' metadata"),
    ("short row", "has 1 scores but 'classes' lists 102"),
    ("no scores", "needs exactly one of the columns 'scores' or 'topk'"),
    ("not parquet", "cannot read prediction file"),
])
def test_bad_prediction_file_is_one_error_line(case: str, message: str, flo_test, tmp_path: Path, capsys) -> None:
    ids, names, _ = flo_test
    path = _bad(case, tmp_path / "p.parquet", ids, names)
    assert run_cli(["evaluate", "flo", "--predictions", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not (tmp_path / "out/results").exists()
