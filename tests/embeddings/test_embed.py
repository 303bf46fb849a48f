"""Class embeddings: cache hit/miss, resume after interruption, word2vec and attribute import."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest

from zsl_scale.cli import main
from zsl_scale.core.errors import DataError
from zsl_scale.embeddings import embed as E
from zsl_scale.embeddings.importers import import_attributes, import_word2vec, iter_word2vec

IN_CI = os.environ.get("CI", "").lower() == "true"
TENCH, GOLDFISH, WHITE_SHARK, TIGER_SHARK = "n01440764", "n01443537", "n01484850", "n01491361"
COCKTAIL_SHAKER = "n03062245"
FAKE = E.TextModel("fake", Path("/nonexistent"), "fp-1")


class CountingEncoder:
    """Deterministic stand-in for the text model: records calls, can fail on a given call."""

    def __init__(self, fail_on_call: int | None = None):
        self.calls: list[list[str]] = []
        self.fail_on_call = fail_on_call

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(texts)
        if self.fail_on_call is not None and len(self.calls) == self.fail_on_call:
            raise KeyboardInterrupt  # like Ctrl-C in the middle of a run
        return np.array([[len(t), t.count(" "), 1.0] for t in texts], dtype=np.float32)


def test_class_text() -> None:
    assert E.class_text(TENCH) == (
        "tench, Tinca tinca: freshwater dace-like game fish of Europe and western Asia noted for ability to "
        "survive outside water"
    )
    with pytest.raises(DataError, match="no lemma/gloss for n99999999"):
        E.class_text("n99999999")


def test_resume_after_interruption(tmp_path: Path) -> None:
    wnids = [TENCH, GOLDFISH, WHITE_SHARK, TIGER_SHARK, COCKTAIL_SHAKER]
    with pytest.raises(KeyboardInterrupt):
        E.embed_classes(wnids, FAKE, CountingEncoder(fail_on_call=2), chunk_size=2, cache_root=tmp_path)
    assert len(list((tmp_path / "fake").glob("part-*.parquet"))) == 1  # first chunk survived, no temp files
    assert not list((tmp_path / "fake").glob(".*"))
    enc = CountingEncoder()
    rep = E.embed_classes(wnids, FAKE, enc, chunk_size=2, cache_root=tmp_path)
    assert (rep.requested, rep.cached, rep.computed) == (5, 2, 3)
    assert [len(c) for c in enc.calls] == [2, 1]
    vecs = E.load_class_embeddings([COCKTAIL_SHAKER, TENCH], "fake", tmp_path)
    assert vecs.shape == (2, 3) and vecs.dtype == np.float32
    assert vecs[1, 0] == len(E.class_text(TENCH))


def test_cache_hit_and_miss(tmp_path: Path) -> None:
    enc = CountingEncoder()
    E.embed_classes([TENCH, GOLDFISH], FAKE, enc, cache_root=tmp_path)
    rep = E.embed_classes([GOLDFISH, TENCH], FAKE, enc, cache_root=tmp_path)
    assert (rep.cached, rep.computed, len(enc.calls)) == (2, 0, 1)
    retrained = E.TextModel("fake", FAKE.path, "fp-2")  # same id, different weights: a miss
    rep = E.embed_classes([TENCH], retrained, enc, cache_root=tmp_path)
    assert (rep.cached, rep.computed) == (0, 1)


def test_load_missing_classes_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no class embeddings cached for model 'fake'"):
        E.load_class_embeddings([TENCH], "fake", tmp_path)
    E.embed_classes([TENCH], FAKE, CountingEncoder(), cache_root=tmp_path)
    with pytest.raises(DataError, match=f"2 class\\(es\\) have no 'fake' embedding: {GOLDFISH}, {TIGER_SHARK}"):
        E.load_class_embeddings([TENCH, GOLDFISH, TIGER_SHARK], "fake", tmp_path)


def real_model() -> E.TextModel:
    try:
        return E.resolve_text_model()
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"default text encoder missing in CI: {exc}")
        pytest.skip(f"default text encoder not installed: {exc}")


def test_real_sentence_model(tmp_path: Path) -> None:
    model = real_model()
    assert model.model_id == "all-MiniLM-L6-v2" and len(model.fingerprint) == 16
    wnids = [TENCH, GOLDFISH, COCKTAIL_SHAKER]
    rep = E.embed_classes(wnids, model, batch_size=2, device="cpu", cache_root=tmp_path, progress=False)
    assert (rep.cached, rep.computed) == (0, 3)
    vecs = E.load_class_embeddings(wnids, cache_root=tmp_path)
    assert vecs.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    fish_fish, fish_shaker = float(vecs[0] @ vecs[1]), float(vecs[0] @ vecs[2])
    assert fish_fish > fish_shaker + 0.1, (fish_fish, fish_shaker)

    def no_encoder(texts: list[str]) -> np.ndarray:
        raise AssertionError("cache hit expected")

    rep = E.embed_classes(wnids, model, no_encoder, cache_root=tmp_path)
    assert (rep.cached, rep.computed) == (3, 0)


def test_bad_model_path_via_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["classes", "embed", "--model", str(tmp_path), "--cache", str(tmp_path / "c"), "--limit", "1"])
    assert exc.value.code == 2
    assert "not a local sentence-transformers model directory" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


VECS = {"tench": [1.0, 0.0], "goldfish": [0.0, 1.0], "great": [1.0, 1.0], "white": [3.0, 1.0],
        "shark": [2.0, 4.0], "Tinca_tinca": [9.0, 9.0]}


def write_w2v(path: Path, binary: bool) -> Path:
    if binary:
        body = b"".join(w.encode() + b" " + struct.pack("<2f", *v) + b"\n" for w, v in VECS.items())
        path.write_bytes(f"{len(VECS)} 2\n".encode() + body)
    else:
        path.write_text(f"{len(VECS)} 2\n" + "".join(f"{w} {v[0]} {v[1]}\n" for w, v in VECS.items()))
    return path


@pytest.mark.parametrize("binary", [False, True])
def test_word2vec_import(tmp_path: Path, binary: bool) -> None:
    path = write_w2v(tmp_path / ("vecs.bin" if binary else "vecs.txt"), binary)
    assert dict((t, v.tolist()) for t, v in iter_word2vec(path)) == VECS  # format auto-detected
    rep = import_word2vec(path, [TENCH, GOLDFISH, WHITE_SHARK, TIGER_SHARK], cache_root=tmp_path / "c")
    assert rep.model_id == "word2vec:vecs" and rep.dim == 2
    assert rep.found == {TENCH: "tench", GOLDFISH: "goldfish", WHITE_SHARK: "mean(great white shark)"}
    assert rep.missing == [TIGER_SHARK]  # no "tiger", no "tiger_shark"
    vecs = E.load_class_embeddings([TENCH, WHITE_SHARK], "word2vec:vecs", tmp_path / "c")
    np.testing.assert_allclose(vecs, [[1.0, 0.0], [2.0, 2.0]])


def test_word2vec_cli_reports_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_w2v(tmp_path / "vecs.txt", binary=False)
    lst = tmp_path / "classes.txt"
    lst.write_text(f"{TENCH}\n{TIGER_SHARK}\n")
    main(["classes", "import-word2vec", str(path), "--classes", str(lst), "--cache", str(tmp_path / "c"),
          "--missing-out", str(tmp_path / "missing.txt")])
    out = capsys.readouterr().out
    assert "1 classes with a vector (dim 2), 1 without" in out and f"{TIGER_SHARK} (tiger shark)" in out
    assert (tmp_path / "missing.txt").read_text() == f"{TIGER_SHARK}\n"


def test_word2vec_bad_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("hello world\n")
    with pytest.raises(DataError, match="not a word2vec file"):
        import_word2vec(bad, [TENCH], cache_root=tmp_path)
    bad.write_text("2 2\ntench 1.0\n")
    with pytest.raises(DataError, match=r"bad.txt:2: expected a token and 2 numbers, got 1"):
        import_word2vec(bad, [TENCH], cache_root=tmp_path)
    trunc = tmp_path / "trunc.bin"
    trunc.write_bytes(write_w2v(tmp_path / "ok.bin", True).read_bytes()[:-5])
    with pytest.raises(DataError, match="truncated"):
        import_word2vec(trunc, [TENCH], binary=True, cache_root=tmp_path)


def test_attribute_matrices(tmp_path: Path) -> None:
    import scipy.io

    att = np.arange(6, dtype=np.float64).reshape(2, 3)  # xlsa17 layout: D x C
    scipy.io.savemat(tmp_path / "att_splits.mat", {"att": att})
    rep = import_attributes(tmp_path / "att_splits.mat", cache_root=tmp_path / "c")
    assert (rep.model_id, rep.dim, sorted(rep.found)) == ("attributes:att_splits", 2, ["class_001", "class_002",
                                                                                       "class_003"])
    np.testing.assert_allclose(E.load_class_embeddings(["class_003", "class_001"], "attributes:att_splits",
                                                       tmp_path / "c"), [[2.0, 5.0], [0.0, 3.0]])
    csv = tmp_path / "att.csv"
    csv.write_text("class,a,b\nzebra,1,0\nhorse,0.5,0.25\n")
    import_attributes(csv, cache_root=tmp_path / "c")
    np.testing.assert_allclose(E.load_class_embeddings(["horse"], "attributes:att", tmp_path / "c"), [[0.5, 0.25]])
    with pytest.raises(DataError, match=r"has no 'nope' matrix \(keys: att\)"):
        import_attributes(tmp_path / "att_splits.mat", key="nope", cache_root=tmp_path / "c")
