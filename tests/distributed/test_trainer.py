"""Distributed CADA-VAE training: DDP ≡ one process, kill/resume, checkpoints, bad input.

Equivalence tolerance. 2 gloo workers and 1 process see the same global batches with the same
per-row noise (streaming.py, distributed.py), so the only difference is float32 summation order:
the gradient of a 50-row batch is summed as 25 + 25 rows plus an all-reduce instead of in one pass
(and GEMMs of another shape block differently). That changes gradients in the last bits (~1e-7
relative); Adam normalises each coordinate by its own running RMS, so a coordinate whose gradient is
near zero can turn a 1e-7 difference into a visible fraction of one step of size lr. Over the 48
steps here we measured a max parameter difference of ~6e-6 (lr 1e-3, parameters up to ~0.1) and
loss differences of ~1e-8 relative; the test allows 1e-4 absolute on parameters (a tenth of one Adam
step) and 1e-6 relative on per-epoch losses. Runs of the *same* worker count — an interrupted and
resumed run vs an uninterrupted one — are bit-identical and are compared exactly.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from zsl_scale.cli import main
from zsl_scale.core.config import ModelSettings, TrainConfig
from zsl_scale.core.errors import ConfigError
from zsl_scale.datasets.synthetic import write_synthetic
from zsl_scale.distributed.config import DistJobConfig
from zsl_scale.distributed.export import gather_params, load_final_model
from zsl_scale.distributed.ray_fit import fit_ray
from zsl_scale.distributed.state import (
    LOSS_COLUMNS,
    check_fingerprint,
    read_checkpoint_dir,
    rng_states,
    set_rng_states,
    write_checkpoint_dir,
)
from zsl_scale.distributed.streaming import load_class_table, open_features
from zsl_scale.distributed.trainer import fit_local, fit_spawn, prepare_job

EPOCHS = 3


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    feats, emb = write_synthetic(root, rows=800, dim=32, classes=6, emb_dim=8, row_group_rows=200)
    return root, feats, emb


def make_job(storage: Path, data, name: str, workers: int = 1, exact: bool = False, **train):
    _, feats, emb = data
    tcfg = TrainConfig(batch_size=50, epochs=EPOCHS, lr=1e-3).shortened(EPOCHS).model_copy(update=train)
    cfg = DistJobConfig(name=name, model=ModelSettings(imagenet=False), train=tcfg,
                        scale={"workers": workers, "streams": 2, "block_rows": 100, "storage_path": str(storage),
                               "max_failures": 1, "exact_sum": exact,
                               "checkpoint_every_s": 0})  # every epoch: the tests count checkpoints
    return prepare_job(cfg, open_features(feats), load_class_table(emb))


def final(run_dir: Path):
    vae, _, state = load_final_model(run_dir)
    return gather_params(vae), state["history"]


@pytest.fixture(scope="module")
def ref1(data):
    storage = data[0] / "runs"
    fit_local(make_job(storage, data, "one"))
    return final(storage / "one")


@pytest.fixture(scope="module")
def ref2(data):
    storage = data[0] / "runs"
    fit_spawn(make_job(storage, data, "two", workers=2), 2)
    return final(storage / "two")


def test_two_ddp_workers_match_one_process(ref1, ref2):
    (p1, h1), (p2, h2) = ref1, ref2
    assert [r["rows"] for r in h1] == [r["rows"] for r in h2] == [800] * EPOCHS
    np.testing.assert_allclose([r["loss"] for r in h2], [r["loss"] for r in h1], rtol=1e-6)
    for key in ("recon", "kl", "cross", "distance"):
        np.testing.assert_allclose([r[key] for r in h2], [r[key] for r in h1], rtol=1e-5)
    assert np.abs(p1 - p2).max() < 1e-4
    assert h1[-1]["loss"] < 0.7 * h1[0]["loss"]  # it is learning, so the comparison is not vacuous


def test_exact_sum_is_bitwise_identical_for_one_and_two_workers(data, ref1, ref2):
    # scale.exact_sum: one gradient per stream, summed in stream order on every worker. 1 process and 2
    # spawned workers must end at the same bits (weights and every per-epoch loss), and with 2 streams both
    # equal plain DDP with 2 workers (its all-reduce of g0 and g1 is the same single addition).
    storage = data[0] / "runs"
    fit_local(make_job(storage, data, "exact-one", exact=True))
    fit_spawn(make_job(storage, data, "exact-two", workers=2, exact=True), 2)
    (p1, h1), (p2, h2) = final(storage / "exact-one"), final(storage / "exact-two")
    assert np.array_equal(p1, p2)
    drop = ("seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in h1] == \
        [{k: v for k, v in r.items() if k not in drop} for r in h2]
    assert np.array_equal(p2, ref2[0]) and [r["loss"] for r in h2] == [r["loss"] for r in ref2[1]]
    assert not np.array_equal(p1, ref1[0])  # the merged-batch 1-process run differs in the last bits
    assert h1[-1]["loss"] < 0.7 * h1[0]["loss"]


def test_loss_csv_and_curve_beside_checkpoints(data, ref1):
    run = data[0] / "runs" / "one"
    lines = (run / "losses.csv").read_text().splitlines()
    assert lines[0].split(",") == list(LOSS_COLUMNS) and len(lines) == EPOCHS + 1
    assert (run / "loss_curve.png").read_bytes()[:4] == b"\x89PNG"
    ckpts = sorted(p.name for p in run.glob("checkpoint_epoch_*"))
    assert ckpts == ["checkpoint_epoch_0002", "checkpoint_epoch_0003"]  # keep_checkpoints = 2
    assert (run / ckpts[-1] / "losses.csv").read_text() == (run / "losses.csv").read_text()


def test_killed_driver_rerun_resumes_to_the_same_result(data, ref1, tmp_path):
    job = make_job(tmp_path, data, "one")
    job.fault = {"epoch": 1, "rank": 0, "marker": str(tmp_path / "killed")}  # dies mid-epoch 1, hard
    (tmp_path / "job.pkl").write_bytes(pickle.dumps(job))
    code = (
        "import pickle, sys; from zsl_scale.distributed.trainer import fit_local; "
        "fit_local(pickle.load(open(sys.argv[1], 'rb')))"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "job.pkl")], capture_output=True, timeout=600)
    assert proc.returncode == 17, proc.stderr.decode()[-2000:]
    assert sorted(p.name for p in (tmp_path / "one").glob("checkpoint_epoch_*")) == ["checkpoint_epoch_0001"]
    job.fault = None
    fit_local(job)  # the re-run resumes from epoch 1
    params, history = final(tmp_path / "one")
    assert history == [dict(r, seconds=h["seconds"]) for r, h in zip(ref1[1], history, strict=True)]
    np.testing.assert_array_equal(params, ref1[0])


def test_ray_train_ddp_is_bitwise_the_spawn_runner(data, ref2, tmp_path, ray_session):
    """One TorchTrainer run (2 gloo workers, DDP's all-reduce) gives bitwise the weights and losses of the
    ``spawn`` runner's 2 workers. A worker lost mid-run (FailureConfig restarting the group from its checkpoint,
    bitwise the uninterrupted run) is tested where users meet it, by killing a node under ``dist train``:
    tests/distributed/test_on_cluster.py::test_resumed_run_after_node_loss_is_bitwise_equal."""
    job = make_job(tmp_path, data, "two", workers=2)
    summary = fit_ray(job)
    assert summary["epochs"] == EPOCHS
    params, history = final(tmp_path / "two")
    np.testing.assert_array_equal(params, ref2[0])
    np.testing.assert_array_equal([r["loss"] for r in history], [r["loss"] for r in ref2[1]])
    assert (tmp_path / "two" / "loss_curve.png").is_file()


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(5)
    state = {"model": {"w": torch.randn(3, 2)}, "optimizer": {"step": 4}, "epoch": 7,
             "history": [{"epoch": 6, "loss": 1.5}], "rng": rng_states()}
    expected = torch.rand(4)
    write_checkpoint_dir(tmp_path, state, {"a": 1, "b": {"c": 2}})
    back = read_checkpoint_dir(tmp_path, {"a": 1, "b": {"c": 2}})
    assert back["epoch"] == 7 and back["optimizer"] == {"step": 4} and back["history"] == state["history"]
    torch.testing.assert_close(back["model"]["w"], state["model"]["w"])
    set_rng_states(back["rng"])
    torch.testing.assert_close(torch.rand(4), expected)
    meta = json.loads((tmp_path / "meta.json").read_text())
    with pytest.raises(ConfigError, match=r"another configuration \(b\.c differ\)"):
        check_fingerprint(meta, {"a": 1, "b": {"c": 3}}, "x")


def test_checkpoint_of_another_config_is_refused_and_kept(data, ref1, capsys):
    run = data[0] / "runs" / "one"
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in run.rglob("*") if p.is_file()}
    job = make_job(data[0] / "runs", data, "one", lr=2e-3)
    with pytest.raises(ConfigError, match=r"was made with another configuration \(train\.lr differ\)"):
        fit_local(job)
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in run.rglob("*") if p.is_file()}
    assert after == before


def test_training_sees_features_scaled_with_training_statistics(data, tmp_path, monkeypatch):
    """The worker feeds (x − min) / (max − min) with min/max of the training shards, stored with the run."""
    import pyarrow.parquet as pq

    from zsl_scale.cada.scaling import fit_feature_scaler
    from zsl_scale.distributed import trainer as distributed

    _, feats, _ = data
    job = make_job(tmp_path, data, "scaled", epochs=1)
    expected = fit_feature_scaler(sorted(feats.glob("*.parquet")), 32)
    np.testing.assert_array_equal(job.scaler.lo, expected.lo)
    np.testing.assert_array_equal(job.scaler.scale, expected.scale)
    assert job.fingerprint()["scaler"] == expected.fingerprint()
    seen: list[torch.Tensor] = []
    real_step = distributed.train_step

    def spy(net, optimizer, batch, weights, **kwargs):
        seen.append(batch["image"].detach().clone())
        return real_step(net, optimizer, batch, weights, **kwargs)

    monkeypatch.setattr(distributed, "train_step", spy)
    fit_local(job)
    images = torch.cat(seen).numpy()
    raw = np.concatenate([np.stack(pq.read_table(p).column("feature").to_numpy(zero_copy_only=False))
                          for p in sorted(feats.glob("*.parquet"))]).astype(np.float32)
    assert images.shape == (800, 32) and images.min() == 0.0 and images.max() == 1.0
    # the rows seen in the epoch are exactly the scaled training rows (order aside)
    np.testing.assert_allclose(np.sort(images, axis=0), np.sort(expected.transform(raw), axis=0), rtol=0, atol=0)
    _, _, state = load_final_model(tmp_path / "scaled")
    assert state["scaler"] == expected.to_extra()


def test_checkpoint_without_scaler_is_refused(data, ref1, tmp_path):
    import shutil

    from zsl_scale.core.errors import DataError

    run = tmp_path / "old"
    shutil.copytree(data[0] / "runs" / "one", run)
    last = sorted(run.glob("checkpoint_epoch_*"))[-1]
    state = torch.load(last / "state.pt", weights_only=True)
    del state["scaler"]
    torch.save(state, last / "state.pt")
    with pytest.raises(DataError, match="has no feature-scaler statistics"):
        load_final_model(run)
    meta = json.loads((last / "meta.json").read_text())
    meta["format_version"] = 1
    with pytest.raises(DataError, match="format version 1, this version reads 3"):
        check_fingerprint(meta, meta["fingerprint"], "old")


def _cli(args: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(args)
    return exc.value.code, capsys.readouterr().err


def test_cli_bad_input_is_one_error_line(data, tmp_path, capsys):
    _, feats, emb = data
    base = ["dist", "train", "--runner", "local", "--storage", str(tmp_path), "--set", "model.imagenet=false"]
    # mismatched feature dimensions
    bad = tmp_path / "bad"
    other, _ = write_synthetic(tmp_path / "o", rows=20, dim=7, classes=2, emb_dim=8)
    bad.mkdir()
    for p in [*feats.glob("*.parquet"), other / "part-00001.parquet"]:
        (bad / (p.name if p.parent == feats else "part-00009.parquet")).write_bytes(p.read_bytes())
    code, err = _cli([*base, "--features", str(bad), "--embeddings", str(emb)], capsys)
    assert code == 2 and err.strip().count("\n") == 0 and "mismatched dimensions" in err
    # a class without an embedding
    _, emb_small = write_synthetic(tmp_path / "e", rows=20, dim=32, classes=3, emb_dim=8)
    code, err = _cli([*base, "--features", str(feats), "--embeddings", str(emb_small)], capsys)
    assert code == 2 and err.startswith("error: class n09000003") and "has no class embedding" in err
    # an unwritable storage path (a file where the folder should be)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, err = _cli([*base[:4], "--storage", str(blocker), *base[6:], "--features", str(feats),
                      "--embeddings", str(emb)], capsys)
    assert code == 2 and "--storage" in err and "is a file, not a folder" in err
    spawn = [*base[:2], "--runner", "spawn", *base[4:]]
    code, err = _cli([*spawn, "--features", str(feats), "--embeddings", str(emb), "--set", "scale.streams=3",
                      "--workers", "2"], capsys)
    assert code == 2 and "must be a multiple" in err
    # one runner vocabulary (jobs too): local is this one process, N processes are spawn
    code, err = _cli([*base, "--features", str(feats), "--embeddings", str(emb), "--workers", "2"], capsys)
    assert code == 2 and err.strip().count("\n") == 0 and "--runner local trains in this one process" in err
    code, err = _cli([*base[:2], "--runner", "spwan", *base[4:]], capsys)
    assert code == 2 and "did you mean 'spawn'?" in err


def test_local_runner_leaves_the_driver_thread_count(data, tmp_path):
    """The worker's ``scale.threads_per_worker`` (1) holds while it trains, not in the driver afterwards."""
    from zsl_scale.distributed import fit_vae

    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        fit_vae(make_job(tmp_path, data, "threads", epochs=1), "local")
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_imagenet_config_end_to_end_on_real_images(imagenet_samples_dir, tmp_path, ray_session, capsys):
    """Real pipeline on a subset of the real sample images: EfficientNet-Lite0 features → MiniLM sentence
    embeddings of "lemmas: gloss" → the paper's ImageNet VAE (latent 128, two hidden layers) → the
    classifier over seen ∪ unseen classes. The full 1,000-image run is the same commands (docs/distributed.md).
    """
    pytest.importorskip("sentence_transformers")
    os_env = pytest.MonkeyPatch()
    os_env.setenv("HF_HUB_OFFLINE", "1")
    import pyarrow as pa

    from zsl_scale.core.io import atomic_write_parquet
    from zsl_scale.core.shards import vector_array
    from zsl_scale.embeddings.embed import embed_classes, load_class_embeddings, resolve_text_model
    from zsl_scale.features.extract import ExtractOptions, extract_features

    dirs = sorted(p for p in imagenet_samples_dir.iterdir() if p.is_dir())
    seen, unseen = dirs[:64], [p.name for p in dirs[64:80]]
    (tmp_path / "images.tsv").write_text("".join(f"{next(iter(sorted(d.iterdir())))}\t{d.name}\n" for d in seen))
    extract_features(tmp_path / "images.tsv", tmp_path / "features",
                     ExtractOptions(shard_size=64, input_kind="list", device="cpu", workers=1))
    wnids = [d.name for d in seen] + unseen
    model = resolve_text_model("default")
    embed_classes(wnids, model, cache_root=tmp_path / "cache", progress=False, device="cpu")
    vectors = load_class_embeddings(wnids, model.model_id, tmp_path / "cache")
    atomic_write_parquet(tmp_path / "emb.parquet", pa.table({"wnid": wnids, "embedding": vector_array(vectors)}))
    (tmp_path / "unseen.txt").write_text("\n".join(unseen) + "\n")

    args = ["dist", "train", "-c", "jobs/imagenet-128d.yaml", "--features", str(tmp_path / "features"),
            "--embeddings", str(tmp_path / "emb.parquet"), "--runner", "local", "--workers", "1", "--epochs", "2",
            "--storage", str(tmp_path / "runs"), "--set", "train.batch_size=32", "--set", "scale.streams=1"]
    main(args)  # a user error would exit 2 with its message
    run = tmp_path / "runs" / "imagenet-128d"
    vae, trained, state = load_final_model(run)
    assert vae.cfg.latent_dim == 128 and vae.cfg.modality("image").encoder_hidden == [1560, 1560]
    assert vae.cfg.modality("image").decoder_hidden == [1160, 1660]
    assert vae.cfg.modality("class").decoder_hidden == [460, 660]
    assert vae.cfg.modality("image").input_dim == 1280 and vae.cfg.modality("class").input_dim == 384
    assert len(trained) == 64 and len(state["history"]) == 2 and np.isfinite(state["history"][-1]["loss"])
    main(["dist", "classifier", "--run", str(run), "--features", str(tmp_path / "features"), "--embeddings",
          str(tmp_path / "emb.parquet"), "--unseen", str(tmp_path / "unseen.txt"), "--epochs", "1", "--device", "cpu",
          "--runner", "local"])
    assert "classifier over 80 classes (64 seen, 16 unseen)" in capsys.readouterr().out
    saved = torch.load(run / "classifier.pt", weights_only=True)
    assert saved["wnids"] == wnids and saved["weight"].shape == (80, 128) and saved["epochs"] == 1
    os_env.undo()


def test_controller_poll_sets_rays_period_for_the_block_only(monkeypatch) -> None:
    """``scale.poll_interval_s`` reaches Ray Train through RAY_TRAIN_HEALTH_CHECK_INTERVAL_S, which Ray reads in
    ``fit()`` (and hands to its controller); outside the block the user's own value, or none, is back."""
    from ray.train.v2._internal.constants import HEALTH_CHECK_INTERVAL_S_ENV_VAR, get_env_vars_to_propagate

    from zsl_scale.distributed.config import ScaleSettings
    from zsl_scale.distributed.ray_fit import POLL_ENV, controller_poll

    assert POLL_ENV == HEALTH_CHECK_INTERVAL_S_ENV_VAR  # the variable this Ray version reads
    assert ScaleSettings().poll_interval_s == 0.5
    monkeypatch.delenv(POLL_ENV, raising=False)
    with controller_poll(0.25):
        assert get_env_vars_to_propagate()[POLL_ENV] == "0.25"  # what fit() passes to the controller
    assert POLL_ENV not in get_env_vars_to_propagate()
    monkeypatch.setenv(POLL_ENV, "3")
    with controller_poll(1):
        assert float(get_env_vars_to_propagate()[POLL_ENV]) == 1.0
    assert get_env_vars_to_propagate()[POLL_ENV] == "3"


def test_local_checkpoints_follow_the_clock(tmp_path, monkeypatch) -> None:
    """``scale.checkpoint_every_s`` for the local runner: the first epoch a run runs, then once the interval has
    passed, and the last one; ``losses.csv`` every epoch."""
    from zsl_scale.distributed import state as state_mod

    clock = iter([0.0, 1.0, 2.0, 11.0, 12.0, 13.0])
    monkeypatch.setattr(state_mod.time, "monotonic", lambda: next(clock))
    ctx = state_mod.LocalContext(tmp_path, every_s=10.0, keep=10)
    history = []
    for epoch in range(6):
        history.append({c: 0.0 for c in LOSS_COLUMNS} | {"epoch": epoch})
        ctx.save({"epoch": epoch + 1, "history": history}, {}, {}, last=epoch == 5)
        assert len((tmp_path / "losses.csv").read_text().splitlines()) == epoch + 2
    saved = sorted(p.name for p in tmp_path.glob("checkpoint_epoch_*"))
    assert saved == ["checkpoint_epoch_0001", "checkpoint_epoch_0004", "checkpoint_epoch_0006"]
