"""Latent generation on Ray: μ per image, noisy samples per class, determinism, resume, CLI errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from zsl_scale.cada.model import CadaVae, ModalitySpec, ModelConfig
from zsl_scale.cada.scaling import FeatureScaler, load_model_scaler
from zsl_scale.cada.train import save_model
from zsl_scale.core.errors import DataError
from zsl_scale.core.shards import ShardStore, iter_batches, vector_array, vectors
from zsl_scale.latents.generate import LatentOptions, generate_latents, read_latent_manifest

D, E, L = 12, 6, 4
COUNTS = {"n00000001": 3, "n00000002": 8, "n00000003": 5, "n00000004": 1}


def _model() -> CadaVae:
    torch.manual_seed(0)
    cfg = ModelConfig(latent_dim=L, modalities=[
        ModalitySpec(name="image", input_dim=D, encoder_hidden=[16], decoder_hidden=[16]),
        ModalitySpec(name="class", input_dim=E, encoder_hidden=[8], decoder_hidden=[8]),
    ])
    return CadaVae(cfg).eval()


# training-feature statistics stored with the model (features ~ N(0, 1): roughly [-3, 3] → [0, 1])
SCALER = FeatureScaler(np.full(D, -3.0), np.linspace(5.0, 7.0, D), rows=100)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return save_model(tmp_path_factory.mktemp("model") / "vae.pt", _model(), SCALER.to_extra())


@pytest.fixture(scope="module")
def feature_dir(tmp_path_factory) -> Path:
    """A small feature set in the features stage's format (3 shards, a class split across two)."""
    out = tmp_path_factory.mktemp("feats") / "features"
    rng = np.random.default_rng(1)
    ids = [f"{w}/{w}_{i}" for w, n in COUNTS.items() for i in range(n)]
    shards = [ids[0:6], ids[6:12], ids[12:]]
    store = ShardStore(out, "features", {"dim": D, "dtype": "float16"}, len(shards)).open()
    for i, rows in enumerate(shards):
        wnids = [r.split("/")[0] for r in rows]
        table = pa.table({"image_id": rows, "wnid": wnids,
                          "feature": vector_array(rng.normal(size=(len(rows), D)).astype(np.float16))})
        store.write_shard(i, table, {"classes": {}, "skipped": []})
    store.finish({})
    return out


@pytest.fixture(scope="module")
def class_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("emb") / "classes.parquet"
    vec = np.random.default_rng(2).normal(size=(len(COUNTS), E)).astype(np.float32)
    pq.write_table(pa.table({"wnid": list(COUNTS), "embedding": vector_array(vec)}), path)
    return path


def _table(out: Path) -> pa.Table:
    return pa.Table.from_batches(list(iter_batches(out, kind="latents")))


def _hashes(out: Path) -> dict[str, str]:
    return {k: v["sha256"] for k, v in read_latent_manifest(out)["shards"].items()}


def _encode(model_path: Path, name: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from zsl_scale.cada.train import load_model

    model, _ = load_model(model_path)
    if name == "image":  # the model's training features were min-max scaled: test features are too
        x = load_model_scaler(model_path).transform(x)
    with torch.inference_mode():
        mu, logvar = model.encode(name, torch.from_numpy(x.astype(np.float32)))
        return mu.numpy(), model.std(logvar).numpy()


@pytest.fixture(scope="module")
def mu_latents(tmp_path_factory, model_path, feature_dir, ray_session):
    """μ of every feature row, on two actors (read by the tests of mode ``mu`` and of feature scaling)."""
    out = tmp_path_factory.mktemp("mu") / "mu"
    return out, generate_latents(model_path, out, LatentOptions(workers=2), features=feature_dir)


def test_mu_mode_mirrors_feature_shards_and_equals_direct_encoding(mu_latents, model_path, feature_dir):
    out, s = mu_latents
    assert s.mode == "mu" and s.num_shards == 3 and s.rows == sum(COUNTS.values())
    got = _table(out)
    feats = pa.Table.from_batches(list(iter_batches(feature_dir, kind="features")))
    assert got.column("image_id").to_pylist() == feats.column("image_id").to_pylist()
    assert got.schema.field("latent").type == pa.list_(pa.float32(), L)
    mu, _ = _encode(model_path, "image", vectors(feats.column("feature")))
    np.testing.assert_allclose(vectors(got.column("latent")), mu, atol=1e-5)
    m = read_latent_manifest(out)
    assert m["complete"] and m["mode"] == "mu" and m["latent_dim"] == L
    assert m["precision"] == {"precision": "fp32", "memory_format": "contiguous"}


def test_image_samples_are_deterministic_per_seed_and_use_one_noise_scalar(
    tmp_path, model_path, feature_dir, ray_session
):
    opts = LatentOptions(per_class=4, seed=7, shard_rows=8, workers=1)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate_latents(model_path, a, opts, features=feature_dir)
    generate_latents(model_path, b, LatentOptions(per_class=4, seed=7, shard_rows=8, workers=2), features=feature_dir)
    generate_latents(model_path, c, LatentOptions(per_class=4, seed=8, shard_rows=8, workers=2), features=feature_dir)
    assert _hashes(a) == _hashes(b)  # same seed, other worker count: byte-identical
    assert _hashes(a) != _hashes(c)
    t = _table(a)
    assert t.num_rows == 4 * len(COUNTS) and read_latent_manifest(a)["num_shards"] == 2
    wnids, src = t.column("wnid").to_pylist(), t.column("source_id").to_pylist()
    assert all(s.startswith(w + "/") for w, s in zip(wnids, src, strict=True))
    by_class = {w: [s for w2, s in zip(wnids, src, strict=True) if w2 == w] for w in COUNTS}
    assert len(set(by_class["n00000002"])) == 4  # 8 images: 4 distinct picks
    assert sorted(by_class["n00000001"]) == sorted([f"n00000001/n00000001_{i}" for i in (0, 1, 2, 0)])
    assert set(by_class["n00000004"]) == {"n00000004/n00000004_0"}
    # z = μ + σ·ε with ONE ε per sample: (z − μ)/σ is constant over the latent dimensions
    feats = pa.Table.from_batches(list(iter_batches(feature_dir, kind="features")))
    row_of = {r: i for i, r in enumerate(feats.column("image_id").to_pylist())}
    x = vectors(feats.column("feature"))[[row_of[s] for s in src]]
    mu, std = _encode(model_path, "image", x)
    eps = (vectors(t.column("latent")) - mu) / std
    np.testing.assert_allclose(eps, eps[:, :1].repeat(L, axis=1), atol=1e-3)
    assert eps[:, 0].std() > 0.1


def test_class_samples_use_one_noise_scalar_and_resume_after_a_lost_shard(tmp_path, model_path, class_file,
                                                                          ray_session):
    out = tmp_path / "cls"
    opts = LatentOptions(per_class=5, seed=3, shard_rows=10, workers=2)
    s = generate_latents(model_path, out, opts, class_embeddings=class_file)
    assert s.mode == "class_samples" and s.rows == 5 * len(COUNTS) and s.num_shards == 2
    full = _table(out)
    emb = pq.read_table(class_file)
    mu, std = _encode(model_path, "class", vectors(emb.column("embedding")))
    z = vectors(full.column("latent")).reshape(len(COUNTS), 5, L)
    eps = (z - mu[:, None]) / std[:, None]
    np.testing.assert_allclose(eps, eps[..., :1].repeat(L, axis=2), atol=1e-3)

    # subsets (keyed by wnid) and re-sharded runs: test_class_latents_do_not_depend_on_batch_composition

    # lose a shard (and leave a temp file as a killed run would): the re-run rewrites just that one
    before = _hashes(out)
    (out / "part-00001.parquet").unlink()
    (out / ".part-00001.parquet.x.parquet.tmp").write_bytes(b"partial")
    again = generate_latents(model_path, out, opts, class_embeddings=class_file)
    assert again.shards_written == 1 and _hashes(out) == before
    assert not list(out.glob(".part-*"))


def _main(argv: list[str], capsys) -> tuple[int, str]:
    from zsl_scale.cli import main

    capsys.readouterr()
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def test_cli_generates_and_rejects_bad_input(tmp_path, capsys, model_path, feature_dir, class_file, ray_session):
    out = tmp_path / "cli"
    code, _ = _main(["latents", "generate", "-m", str(model_path), "--features", str(feature_dir),
                     "--per-class", "2", "--seed", "1", "-o", str(out)], capsys)
    assert code == 0 and _table(out).num_rows == 2 * len(COUNTS)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = [
        (["-m", str(tmp_path / "none.pt"), "--features", str(feature_dir)], "model checkpoint not found"),
        (["-m", str(model_path), "--features", str(feature_dir), "--class-embeddings", str(class_file)],
         "exactly one of"),
        (["-m", str(model_path), "--class-embeddings", str(class_file)], "needs --per-class"),
        (["-m", str(model_path), "--features", str(tmp_path)], "no manifest.json"),
        (["-m", str(model_path), "--features", str(feature_dir), "--per-class", "3", "--seed", "1"],
         "different settings"),
        (["-m", str(model_path), "--features", str(feature_dir), "--device", "cpu", "--precision", "fp16"],
         "fp16 is for CUDA"),
    ]
    for args, message in bad:
        code, err = _main(["latents", "generate", *args, "-o", str(out)], capsys)
        assert code == 2 and err.startswith("error: ") and message in err, (args, err)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_features_are_scaled_with_the_models_statistics_and_a_model_without_them_is_refused(
    tmp_path, mu_latents, model_path, feature_dir, class_file, ray_session
):
    out, _ = mu_latents
    feats = pa.Table.from_batches(list(iter_batches(feature_dir, kind="features")))
    x = vectors(feats.column("feature")).astype(np.float32)
    from zsl_scale.cada.train import load_model

    model, _ = load_model(model_path)
    with torch.inference_mode():
        scaled = model.encode("image", torch.from_numpy((x + 3.0) / SCALER.scale))[0].numpy()
        raw = model.encode("image", torch.from_numpy(x))[0].numpy()
    got = vectors(_table(out).column("latent"))
    np.testing.assert_allclose(got, scaled, atol=1e-5)
    assert np.abs(got - raw).max() > 1e-2  # unscaled features would give other latents

    bare = save_model(tmp_path / "bare.pt", _model())  # no scaler statistics
    for per_class in (None, 2):
        with pytest.raises(DataError, match=r"bare\.pt has no feature-scaler statistics"):
            generate_latents(bare, tmp_path / f"x{per_class}", LatentOptions(per_class=per_class),
                             features=feature_dir)
    assert not (tmp_path / "xNone").exists()
    s = generate_latents(bare, tmp_path / "cls", LatentOptions(per_class=2, workers=1), class_embeddings=class_file)
    assert s.rows == 2 * len(COUNTS)  # class embeddings alone need no image statistics


WIDE_CLASSES = [f"n{i:08d}" for i in range(1, 41)]


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory) -> tuple[Path, Path]:
    """A model and class table wide enough that MKL picks other GEMM kernels for other batch shapes."""
    torch.manual_seed(1)
    cfg = ModelConfig(latent_dim=64, modalities=[
        ModalitySpec(name="image", input_dim=D, encoder_hidden=[16], decoder_hidden=[16]),
        ModalitySpec(name="class", input_dim=300, encoder_hidden=[517], decoder_hidden=[16]),
    ])
    root = tmp_path_factory.mktemp("wide")
    path = save_model(root / "vae.pt", CadaVae(cfg).eval(), SCALER.to_extra())
    vec = np.random.default_rng(5).normal(size=(len(WIDE_CLASSES), 300)).astype(np.float32)
    pq.write_table(pa.table({"wnid": WIDE_CLASSES, "embedding": vector_array(vec)}), root / "classes.parquet")
    return path, root / "classes.parquet"


def test_class_latents_do_not_depend_on_batch_composition(tmp_path, wide_model, ray_session):
    """Subsets and re-sharded runs give bitwise the same rows: compared as shard sha256 values."""
    path, classes = wide_model
    full, one = tmp_path / "full", tmp_path / "one"
    generate_latents(path, full, LatentOptions(per_class=7, seed=0, shard_rows=7 * 40), class_embeddings=classes)
    generate_latents(path, one, LatentOptions(per_class=7, seed=0, shard_rows=7), class_embeddings=classes)
    t_full, t_one = _table(full), _table(one)
    assert read_latent_manifest(one)["num_shards"] == 40
    np.testing.assert_array_equal(vectors(t_one.column("latent")), vectors(t_full.column("latent")))
    # a subset (one class, not the first: its RNG is keyed by its wnid, not its position) hashes like its shard
    sub = tmp_path / "sub"
    generate_latents(path, sub, LatentOptions(per_class=7, seed=0, shard_rows=7, classes=(WIDE_CLASSES[37],)),
                     class_embeddings=classes)
    assert _hashes(sub)["part-00000.parquet"] == _hashes(one)["part-00037.parquet"]


def test_a_feature_folder_without_extraction_hashes_is_planned_by_its_files(tmp_path, model_path) -> None:
    """A feature folder not written by ``features extract`` (``write_synthetic``, a user's converter) has no
    settings or shard hashes in its manifest: it used to end in ``KeyError: 'settings_sha256'``. Its header and
    files identify it instead, so changing a shard still refuses to resume into the old latents."""
    from zsl_scale.datasets.synthetic import write_synthetic
    from zsl_scale.latents.generate import _plan

    feats, _ = write_synthetic(tmp_path / "syn", rows=30, dim=D, classes=3, emb_dim=E, shards=2)
    mode, units, header = _plan(model_path, LatentOptions(), feats, None)
    assert mode == "mu" and len(units) == 2 and header["source"]["kind"] == "features"
    first = header["source"]
    table = pq.read_table(feats / "part-00001.parquet")
    pq.write_table(table.slice(0, table.num_rows - 1), feats / "part-00001.parquet")
    assert _plan(model_path, LatentOptions(), feats, None)[2]["source"]["shards_sha256"] != first["shards_sha256"]
    assert _plan(model_path, LatentOptions(), feats, None)[2]["source"]["settings_sha256"] == first["settings_sha256"]
