"""Fuzz the CLI's file inputs: every file-reading entry point listed in docs/reliability.md gets a truncated,
a random-bytes, an empty and a wrong-type (valid syntax, other shape) version of a valid file.

Each must give exactly one ``error:`` line, exit code 2, and write nothing (the folder's other files are
unchanged and no new file or folder appears). In-process (``run_cli``) for speed; tests/reliability/
test_round_three.py runs the same CLI as subprocesses. Seeded: the same bytes every run.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import yaml

from tests.conftest import run_cli
from tests.protocol.test_evaluate import separable_benchmark
from zsl_scale.core import sha256_file
from zsl_scale.datasets.bundle import save_bundle
from zsl_scale.datasets.synthetic import write_synthetic

DAMAGES = ("truncated", "random", "empty", "wrong_type")
WNIDS = ["n01440764", "n01443537", "n01484850"]


def _parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def _torch(obj) -> bytes:
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


OTHER_PARQUET = _parquet(pa.table({"a": [1, 2, 3]}))


class Entry:
    """One entry point: ``setup(root)`` builds valid inputs and returns (args, target file, wrong-type bytes).

    ``valid``: damages that give a valid file for this format (an empty YAML config is all defaults), skipped.
    """

    def __init__(self, name: str, setup: Callable[[Path], tuple[list[str], Path, bytes]], rehash: bool = False,
                 valid: tuple[str, ...] = ()):
        self.name, self.setup, self.rehash, self.valid = name, setup, rehash, valid


def _bundle(fname: str, wrong: bytes) -> Callable[[Path], tuple[list[str], Path, bytes]]:
    def setup(root: Path):
        d = save_bundle(separable_benchmark(), root / "bench", feature_dtype="float32")
        return ["evaluate", str(d), "--out", str(root / "out"), "--set", "train.epochs=1"], d / fname, wrong

    return setup


def _xlsa17(fname: str) -> Callable[[Path], tuple[list[str], Path, bytes]]:
    def setup(root: Path):
        from scipy.io import savemat

        d = root / "xlsa"
        d.mkdir()
        rng = np.random.default_rng(0)
        savemat(d / "res101.mat", {"features": rng.random((8, 20)), "labels": np.repeat(np.arange(1, 5), 5)[:, None]})
        locs = {"trainval_loc": np.arange(1, 11), "train_loc": np.arange(1, 6), "val_loc": np.arange(6, 11),
                "test_seen_loc": np.arange(1, 3), "test_unseen_loc": np.arange(11, 21)}
        savemat(d / "att_splits.mat", {"att": rng.random((3, 4)), **{k: v[:, None] for k, v in locs.items()}})
        other = root / "other.mat"
        savemat(other, {"x": np.ones(3)})
        return ["evaluate", str(d), "--out", str(root / "out")], d / fname, other.read_bytes()

    return setup


def _config(root: Path):
    path = root / "c.yaml"
    path.write_text("train:\n  epochs: 1\n")
    return ["evaluate", "flo", "-c", str(path), "--out", str(root / "out"), "--set", "train.epochs=1"], path, \
        b"train: [1, 2]\n"


def _model(root: Path):
    path = root / "model.pt"
    path.write_bytes(_torch({"state": {"w": torch.ones(3)}, "config": {"a": 1}}))
    return ["evaluate", "flo", "--model", str(path), "--out", str(root / "out")], path, _torch([1, 2, 3])


def _results(root: Path):
    from zsl_scale.results import Metrics, ResultRecord, write_result

    rec = ResultRecord(dataset="flo", split="xlsa17", method="ESZSL", seed=0, setting="gzsl", selection="validation",
                       metrics=Metrics(S=1.0, U=2.0, H=1.3), config={}, config_sha256="0" * 64)
    path = write_result(rec, root / "results")
    return ["leaderboard", str(root / "results"), "--out", str(root / "out")], path, b'{"dataset": 3}'


def _job(root: Path):
    path = root / "job.yaml"
    path.write_text(yaml.safe_dump({"name": "j", "stages": [{"name": "leaderboard", "config": {}}]}))
    return ["run", str(path), "--workdir", str(root / "out")], path, b"name: j\nstages: 5\n"


def _dist(which: str) -> Callable[[Path], tuple[list[str], Path, bytes]]:
    def setup(root: Path):
        feats, emb = write_synthetic(root / "data", rows=40, dim=8, classes=3, emb_dim=4)
        target = next(feats.glob("*.parquet")) if which == "features" else emb
        if which == "config":
            target = root / "dist.yaml"
            target.write_text("name: r\n")
        args = ["dist", "train", "--features", str(feats), "--embeddings", str(emb), "--runner", "local",
                "--storage", str(root / "out"), "--set", "model.imagenet=false"]
        return ([*args, "-c", str(target)] if which == "config" else args), target, (
            b"scale: 7\n" if which == "config" else OTHER_PARQUET)

    return setup


def _latents_model(root: Path):
    feats, _ = write_synthetic(root / "data", rows=40, dim=8, classes=3, emb_dim=4)
    path = root / "vae.pt"
    path.write_bytes(_torch({"state": {}}))
    return ["latents", "generate", "--model", str(path), "--features", str(feats), "--out", str(root / "out")], \
        path, _torch({"model_config": 5})


def _split_root(root: Path) -> Path:
    """A built split ``2H`` (three 21K wnids) under ``root/splits``."""
    from zsl_scale.imagenet.splits import split_dir

    folder = split_dir("2H", root / "splits")
    folder.mkdir(parents=True)
    (folder / "2H.txt").write_text("".join(f"{w}\n" for w in WNIDS))
    (folder / "manifest.json").write_text(json.dumps({
        "name": "2H", "definition": "test", "num_classes": 3,
        "files": {"2H.txt": {"sha256": sha256_file(folder / "2H.txt")}}}))
    return folder


def _split_list(which: str) -> Callable[[Path], tuple[list[str], Path, bytes]]:
    def setup(root: Path):
        folder = _split_root(root)
        target = folder / ("manifest.json" if which == "manifest" else "2H.txt")
        return ["splits", "show", "2H", "--root", str(root / "splits")], target, (
            b"[1, 2]" if which == "manifest" else b"12345 not-a-wnid\n")

    return setup


def _counts(root: Path):
    path = root / "counts.tsv"
    path.write_text("wnid\tcount\n" + "".join(f"{w}\t{i + 10}\n" for i, w in enumerate(WNIDS)))
    return ["splits", "build", "-s", "M500", "--counts", str(path), "--root", str(root / "out")], path, \
        b"wnid\tcount\nn01440764\tmany\n"


def _image_list(root: Path):
    path = root / "images.txt"
    (root / "img").mkdir()
    (root / "img" / "a.jpg").write_bytes(b"\xff\xd8\xff")
    path.write_text(f"{root / 'img' / 'a.jpg'}\tn01440764\n")
    return ["features", "count", str(path), "--out", str(root / "out" / "counts.tsv")], path, b"only-one-column\n"


def _wnid_list(root: Path):
    _, emb = write_synthetic(root / "data", rows=40, dim=8, classes=3, emb_dim=4)
    path = root / "classes.txt"
    path.write_text("n09000001\n")
    return ["latents", "generate", "--model", str(root / "none.pt"), "--class-embeddings", str(emb),
            "--classes", str(path), "--out", str(root / "out")], path, b"\x00\x01 7\n"


def _attributes(root: Path):
    path = root / "att.csv"
    path.write_text("".join(f"{w},0.1,0.2\n" for w in WNIDS))  # cut in half: mid-row
    return ["classes", "import-attributes", str(path), "--cache", str(root / "out")], path, b"n01440764,abc,x\n"


ENTRIES = [
    Entry("bundle-benchmark.json", _bundle("benchmark.json", b"[1, 2]")),
    Entry("bundle-features.parquet", _bundle("features.parquet", OTHER_PARQUET), rehash=True),
    Entry("bundle-classes.parquet", _bundle("classes.parquet", OTHER_PARQUET), rehash=True),
    Entry("bundle-splits.parquet", _bundle("splits.parquet", OTHER_PARQUET), rehash=True),
    Entry("xlsa17-res101.mat", _xlsa17("res101.mat")),
    Entry("xlsa17-att_splits.mat", _xlsa17("att_splits.mat")),
    Entry("config-yaml", _config, valid=("empty",)),
    Entry("model-pt", _model),
    Entry("results-json", _results),
    Entry("job-yaml", _job),
    Entry("dist-features-parquet", _dist("features")),
    Entry("dist-embeddings-parquet", _dist("embeddings")),
    Entry("dist-config-yaml", _dist("config"), valid=("empty",)),
    Entry("latents-model-pt", _latents_model),
    Entry("split-list", _split_list("list")),
    Entry("split-manifest", _split_list("manifest")),
    Entry("count-table", _counts),
    Entry("image-list", _image_list),
    Entry("wnid-list", _wnid_list),
    Entry("attributes-table", _attributes),
]


def _damaged(valid: bytes, damage: str, wrong: bytes, rng: random.Random) -> bytes:
    if damage == "truncated":
        return valid[: max(1, len(valid) // 2)]
    if damage == "random":
        return bytes(rng.getrandbits(8) for _ in range(max(64, min(len(valid), 4096))))
    if damage == "empty":
        return b""
    return wrong


def _snapshot(root: Path, skip: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): (sha256_file(p) if p.is_file() else "dir") for p in sorted(root.rglob("*"))
            if p != skip}


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_fuzzed_file_is_one_error_line(entry: Entry, tmp_path: Path, capsys) -> None:
    rng = random.Random(entry.name)
    for damage in (d for d in DAMAGES if d not in entry.valid):
        root = tmp_path / damage
        root.mkdir()
        args, target, wrong = entry.setup(root)
        content = _damaged(target.read_bytes(), damage, wrong, rng)
        target.write_bytes(content)
        if entry.rehash:  # re-recorded digest: the file's reader itself must refuse it, not the hash check
            meta = json.loads((target.parent / "benchmark.json").read_text())
            meta["sha256"][target.name] = sha256_file(target)
            (target.parent / "benchmark.json").write_text(json.dumps(meta))
        before = _snapshot(root, target)
        capsys.readouterr()
        code = run_cli(args)
        lines = capsys.readouterr().err.strip().splitlines()
        errors = [line for line in lines if line.startswith("error:")]
        assert code == 2 and len(errors) == 1 and lines[-1] == errors[0], (damage, lines[-5:])
        assert _snapshot(root, target) == before, (damage, "files changed or appeared")
        assert target.read_bytes() == content
