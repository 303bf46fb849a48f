"""Leaderboard from fixture results: files exist, our and published numbers appear, HTML loads cleanly."""

from __future__ import annotations

import csv
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from zsl_scale.cli import main
from zsl_scale.core.errors import DataError
from zsl_scale.report.leaderboard import build_leaderboard, load_results, published_entries, render_markdown
from zsl_scale.results.schema import Metrics, ResultRecord, write_result

IN_CI = os.environ.get("CI", "").lower() == "true"


def make_record(dataset: str, split: str, seed: int, selection: str = "validation", **metrics) -> ResultRecord:
    return ResultRecord(dataset=dataset, split=split, method="CADA-VAE", seed=seed, metrics=Metrics(**metrics),
                        selection=selection,
                        config={"seed": seed}, provenance={"git_commit": "abc", "device": "cpu", "date": "2026"})


@pytest.fixture()
def results_dir(tmp_path: Path) -> Path:
    d = tmp_path / "results"
    write_result(make_record("CUB", "test", 0, S=50.0, U=41.25, H=45.2), d)
    write_result(make_record("CUB", "test", 1, S=52.0, U=43.25, H=47.2), d)
    groups = {"animal": 12.5, "artifact": 7.75}
    write_result(make_record("imagenet21k", "2H", 0, U=17.3, top_k={"top1": 17.3, "top5": 40.1},
                             per_group=groups), d / "imagenet")
    write_result(make_record("imagenet21k", "All", 0, U=1.9, top_k={"top1": 1.9}), d / "imagenet")
    (d / "manifest.json").write_text("{}")  # unrelated JSON in a results folder is ignored
    return d


def test_leaderboard_files_and_numbers(results_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "board"
    written = build_leaderboard([results_dir], out)
    for key in ("csv", "markdown", "html"):
        assert written[key].exists()
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["groups.png", "imagenet_splits.png", "suh.png"]
    assert all((out / p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    md = (out / "leaderboard.md").read_text()
    assert "| CUB | test |  | gzsl | CADA-VAE | ours | validation | 2 | 51.0 ± 1.4 | 42.2 ± 1.4 | 46.2 ± 1.4 |" in md
    assert "| CUB | test |  | gzsl | CADA-VAE | published | published |  | 53.5 | 51.6 | 52.4 |" in md
    assert "| imagenet21k | 2H |  | gzsl | CADA-VAE | ours | validation | 1 | – | 17.3 |" in md
    rows = list(csv.DictReader((out / "leaderboard.csv").open()))
    ours = [r for r in rows if r["source"] == "ours"]
    assert len(ours) == 4 and {r["U"] for r in ours} >= {"41.25", "43.25", "17.3", "1.9"}
    pub = [r for r in rows if r["source"].startswith("published")]
    assert any(r["dataset"] == "CUB" and r["H"] == "52.4" and "Table 2" in r["source"] for r in pub)
    page = (out / "index.html").read_text()
    assert "42.2 ± 1.4" in page and "52.4" in page and "published" in page and 'src="suh.png"' in page


def test_published_numbers_match_the_paper(shared_data: Path) -> None:
    text = (shared_data.parent / "paper" / "cada-vae.txt").read_text()
    table2 = "ours (CADA-VAE) 64 53.5 51.6 52.4 35.7 47.2 40.6 72.8 57.3 64.1 75.0 55.8 63.9"
    assert table2 in text
    got = {(e["dataset"], e["method"]): (e.get("S"), e.get("U"), e["H"]) for e in published_entries() if "H" in e}
    assert got[("CUB", "CADA-VAE")] == (53.5, 51.6, 52.4)
    assert got[("AWA2", "CADA-VAE")] == (75.0, 55.8, 63.9)
    assert "57.7 43.7 49.7 36.6 42.6 39.4 61.4 57.9 59.6 68.9 52.1 59.4" in text
    assert got[("SUN", "f-CLSWGAN")] == (36.6, 42.6, 39.4)
    assert "CA-VAE 52.6 48.1 50.2" in text and got[("CUB", "CA-VAE")] == (52.6, 48.1, 50.2)


def test_every_table2_row_is_published_with_its_selection(shared_data: Path) -> None:
    text = (shared_data.parent / "paper" / "cada-vae.txt").read_text()
    got = {(e["dataset"], e["method"]): e for e in published_entries() if e["setting"] == "gzsl"}
    for method, paper_name in [("CMT", "CMT"), ("SJE", "SJE"), ("ALE", "ALE"), ("LATEM", "LATEM"),
                               ("ESZSL", "EZSL"), ("SYNC", "SYNC"), ("DeViSE", "DeViSE"), ("CVAE", "CVAE"),
                               ("SE", "SE"), ("ReViSE", "ReViSE")]:
        lines = text.splitlines()
        head = next(i for i, ln in enumerate(lines) if ln.startswith("Model Feature Size"))
        start = next(i for i, ln in enumerate(lines) if i > head and ln.startswith(f"{paper_name} ["))
        line = next(ln for ln in lines[start:] if len(ln.split()) >= 12)  # CMT's numbers are on a later line
        numbers = [t for t in line.split() if t[0].isdigit() or t == "–"][-12:]
        for k, ds in enumerate(("CUB", "SUN", "AWA1", "AWA2")):
            e = got[(ds, method)]
            want = [None if t == "–" else float(t) for t in numbers[3 * k : 3 * k + 3]]
            assert [e.get("S"), e.get("U"), e["H"]] == want, (method, ds)
            assert e["selection"] and "Table 2" in e["where"]


def test_mixed_schema_refused(results_dir: Path, tmp_path: Path, capsys) -> None:
    path = next(results_dir.glob("CUB*seed1.json"))
    data = json.loads(path.read_text())
    data["schema_version"] = "0.9"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"mixed schema versions: 0\.9 \(1 files"):
        load_results([results_dir])
    with pytest.raises(SystemExit) as exc:
        main(["leaderboard", str(results_dir), "--out", str(tmp_path / "b")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: results have mixed schema versions")
    assert not (tmp_path / "b" / "index.html").exists()


def test_cli_and_markdown(results_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from zsl_scale.cli import app

    res = CliRunner().invoke(app, ["leaderboard", str(results_dir), "--out", str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "b" / "index.html").exists()
    md = render_markdown([make_record("CUB", "test", 0, S=50.0, U=41.25, H=45.2),
                          make_record("imagenet21k", "2H", 0, U=17.3, per_group={"animal": 12.5})])
    assert "| CUB | test |  | gzsl | CADA-VAE | ours | validation | 1 | 50.0 | 41.2 | 45.2 |" in md
    assert "53.5" in md and "published" in md.lower() and "| animal | 12.5 |" in md
    with pytest.raises(SystemExit) as exc:
        main(["leaderboard", str(tmp_path / "nope"), "--out", str(tmp_path / "c")])
    assert exc.value.code == 2


# --- headless Chromium over the DevTools protocol on a pipe (no extra Python dependency) ---------------

def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    msg = "headless Chromium not installed (apt-get install -y chromium)"
    if IN_CI:
        pytest.fail(msg)
    pytest.skip(msg)


class _Cdp:
    """Minimal Chrome DevTools Protocol client over --remote-debugging-pipe (fds 3 and 4)."""

    def __init__(self, exe: str, profile: Path) -> None:
        to_r, self._w = os.pipe()
        self._r, from_w = os.pipe()

        def wire() -> None:
            os.dup2(to_r, 3)
            os.dup2(from_w, 4)

        args = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
                f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"]
        self.proc = subprocess.Popen(args, preexec_fn=wire, pass_fds=(3, 4), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        os.close(to_r)
        os.close(from_w)
        self._id, self._buf, self.events = 0, b"", []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        return self.wait(lambda m: m.get("id") == self._id)

    def wait(self, pred, timeout: float = 30.0) -> dict:
        end = time.monotonic() + timeout
        while True:
            while b"\0" in self._buf:
                raw, self._buf = self._buf.split(b"\0", 1)
                m = json.loads(raw)
                if "method" in m:
                    self.events.append(m)
                if pred(m):
                    if "error" in m:
                        raise RuntimeError(m["error"])
                    return m
            left = end - time.monotonic()
            if left <= 0 or not select.select([self._r], [], [], left)[0]:
                raise TimeoutError("no answer from Chromium")
            chunk = os.read(self._r, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buf += chunk

    def open_and_eval(self, page_file: Path, expression: str) -> object:
        """Load a file in the page target (Page, Runtime and Log events on), then evaluate a JSON.stringify
        expression in it and return the parsed value."""
        page = next(t for t in self.send("Target.getTargets")["result"]["targetInfos"] if t["type"] == "page")
        sid = self.send("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True})["result"]["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=sid)
        self.send("Page.navigate", {"url": page_file.as_uri()}, session=sid)
        self.wait(lambda m: m.get("method") == "Page.loadEventFired")
        res = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=sid)
        return json.loads(res["result"]["result"]["value"])

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)
        os.close(self._w)
        os.close(self._r)


def test_html_loads_in_headless_chromium_without_errors(results_dir: Path, tmp_path: Path) -> None:
    exe = _chromium()
    out = tmp_path / "board"
    build_leaderboard([results_dir], out)
    cdp = _Cdp(exe, tmp_path / "profile")
    try:
        check = ("JSON.stringify({title: document.title, rows: document.querySelectorAll('tr').length,"
                 " imgs: Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)})")
        state = cdp.open_and_eval(out / "index.html", check)
    finally:
        cdp.close()
    errors = [e for e in cdp.events
              if e["method"] == "Runtime.exceptionThrown"
              or (e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] in ("error", "assert"))
              or (e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")]
    assert errors == []
    assert state["title"] == "zsl-scale leaderboard"
    assert state["rows"] > 5
    assert state["imgs"] == [True, True, True]


def test_rows_of_different_selection_are_never_ranked_together(tmp_path: Path) -> None:
    """A fixed-epoch (authors preset) result and a validation-chosen one of the same method stay two labelled rows."""
    d = tmp_path / "results"
    write_result(make_record("FLO", "xlsa17", 0, S=48.0, U=50.0, H=49.0), d / "clean")
    write_result(make_record("FLO", "xlsa17", 0, selection="fixed", S=62.0, U=47.0, H=53.5), d / "authors")
    out = build_leaderboard([d], tmp_path / "board")
    with open(out["csv"]) as f:
        ours = [r for r in csv.DictReader(f) if r["source"] == "ours"]
    assert sorted((r["selection"], r["H"]) for r in ours) == [("fixed", "53.5"), ("validation", "49.0")]
    md = out["markdown"].read_text()
    rows = [line for line in md.splitlines() if line.startswith("| FLO")]
    assert len(rows) == 2 and "| validation |" in rows[0] and "| fixed |" in rows[1], rows  # clean row first
    assert "49.0" in rows[0] and "53.5" in rows[1]  # never averaged into one (51.2) row
    assert "<th>selection</th>" in out["html"].read_text()


def test_restricted_split_is_its_own_labelled_column_in_chromium(tmp_path: Path) -> None:
    """A fall-2011 2H number and a 2H restricted to ImageNet-12K are over different classes: two columns."""
    exe = _chromium()
    d = tmp_path / "results"
    full = make_record("imagenet21k", "2H", 0, U=17.3, top_k={"top1": 17.3})
    full.extra["eval_set"] = {"universe": "fall11", "seen_classes": 1000, "unseen_classes": 1548}
    cut = make_record("imagenet21k", "2H@in12k", 0, U=21.9, top_k={"top1": 21.9})
    cut.extra["eval_set"] = {"universe": "in12k", "seen_classes": 993, "unseen_classes": 1064}
    write_result(full, d)
    write_result(cut, d)
    out = build_leaderboard([d], tmp_path / "board")
    cdp = _Cdp(exe, tmp_path / "profile")
    try:
        read = ("JSON.stringify(Array.from(document.querySelectorAll('table')[0].rows)"
                ".map(r => Array.from(r.cells).map(c => c.innerText)))")
        table = cdp.open_and_eval(out["html"], read)
    finally:
        cdp.close()
    head, rows = table[0], table[1:]
    assert head[4:] == ["2H", "2H@in12k [universe in12k: 1,064 unseen / 993 seen]"]
    assert rows == [["CADA-VAE", "ours", "validation", "1", "17.3", "21.9"]]  # one method, two columns, no mean
