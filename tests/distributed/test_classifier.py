"""The classifier at scale: latent bank sizes, fixed vs dynamic sets, DDP ≡ one process, it learns."""

from __future__ import annotations

import os
import socket

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from zsl_scale.cada.model import CadaVae, ModalitySpec, ModelConfig
from zsl_scale.cada.scaling import fit_feature_scaler
from zsl_scale.cada.train import train_vae
from zsl_scale.core.config import ClassifierConfig, TrainConfig
from zsl_scale.core.errors import DataError
from zsl_scale.datasets.synthetic import write_synthetic
from zsl_scale.distributed.classifier import _indices, _reservoir, build_bank, classify_features, train_classifier
from zsl_scale.distributed.streaming import load_class_table, open_features

CFG = ClassifierConfig(seen_samples=20, unseen_samples=40, batch_size=32)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("clf")
    feats, emb = write_synthetic(root, rows=600, dim=64, classes=6, emb_dim=8, row_group_rows=100, extra_classes=3)
    torch.manual_seed(0)
    vae = CadaVae(ModelConfig(latent_dim=16, modalities=[
        ModalitySpec(name="image", input_dim=64, encoder_hidden=[64], decoder_hidden=[64]),
        ModalitySpec(name="class", input_dim=8, encoder_hidden=[32], decoder_hidden=[32])]))
    source, classes = open_features(feats), load_class_table(emb)
    seen, unseen = list(source.class_counts), classes.wnids[6:]
    table = pa.concat_tables([pq.read_table(p) for p in source.files])
    x = torch.from_numpy(np.stack(table.column("feature").to_numpy(zero_copy_only=False)).astype(np.float32))
    y = torch.tensor([classes.wnids.index(w) for w in table.column("wnid").to_pylist()])
    scaler = fit_feature_scaler(source.files, source.dim)
    train_vae(vae, torch.from_numpy(scaler.transform(x.numpy())), y, torch.from_numpy(classes.vectors),
              TrainConfig(epochs=20, lr=1e-3).shortened(20))
    bank = build_bank(vae, source, classes, seen, unseen, CFG, scaler, seed=1)
    return vae, source, classes, bank, scaler


def test_reservoir_keeps_k_per_class_uniformly():
    labels = np.repeat(np.arange(3), [5, 50, 1])
    keys = np.random.default_rng(0).random(len(labels))
    kept = labels[_reservoir(keys, labels, 10)]
    assert np.bincount(kept).tolist() == [5, 10, 1]


def test_bank_has_200_400_style_sample_counts(setup):
    _, source, _, bank, _ = setup
    assert bank.wnids[:6] == list(source.class_counts) and len(bank.wnids) == 9
    assert bank.num_samples == 6 * CFG.seen_samples + 3 * CFG.unseen_samples
    per_class = np.bincount(bank.row_class[bank.sample_row].numpy())
    assert per_class.tolist() == [20] * 6 + [40] * 3
    assert bank.mu.shape[0] == 6 * 20 + 3  # ≤ 20 reservoir images per seen class, 1 row per unseen class


def test_missing_embedding_or_images_are_refused(setup):
    vae, source, classes, _, scaler = setup
    with pytest.raises(DataError, match="n07777777 has no class embedding"):
        build_bank(vae, source, classes, list(source.class_counts), ["n07777777"], CFG, scaler)
    with pytest.raises(DataError, match=f"seen class {classes.wnids[7]} has no image features"):
        build_bank(vae, source, classes, [*source.class_counts, classes.wnids[7]], [], CFG, scaler)


def test_fixed_set_repeats_and_dynamic_set_does_not(setup):
    bank = setup[3]
    z_fixed = [bank.latents(torch.arange(10))[0] for _ in range(2)]
    torch.testing.assert_close(z_fixed[0], z_fixed[1])
    dyn = [next(_indices(bank, "dynamic", 0, e, 32)) for e in (0, 1)]
    assert not torch.equal(dyn[0][1], dyn[1][1])
    fixed = next(_indices(bank, "fixed", 0, 0, 32))
    assert fixed[1] is None and len(set(fixed[0].tolist())) == 32


def test_classifier_learns(setup):
    vae, source, classes, small, scaler = setup
    cfg = ClassifierConfig()  # the paper's 200 / 400 latents per seen / unseen class
    bank = build_bank(vae, source, classes, small.wnids[:6], small.wnids[6:], cfg, scaler, seed=1)
    linear, history = train_classifier(bank, cfg, epochs=6, seed=0)
    assert history[-1]["loss"] < history[0]["loss"]
    table = pq.read_table(source.files[0])
    x = torch.from_numpy(np.stack(table.column("feature").to_numpy(zero_copy_only=False)).astype(np.float32))
    y = torch.tensor([bank.wnids.index(w) for w in table.column("wnid").to_pylist()])
    acc = (classify_features(vae, linear, x, scaler)[:, 0] == y).float().mean().item()
    assert acc > 0.3  # 9-way (6 seen + 3 unseen classes): chance 0.11; measured 0.70 (min-max scaled 64-d features)
    assert classify_features(vae, linear, x, scaler, k=3).shape == (len(y), 3)


def _spawned(rank: int, port: int, bank, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), GLOO_SOCKET_IFNAME="lo")
    dist.init_process_group("gloo", rank=rank, world_size=2)
    linear, history = train_classifier(bank, CFG, epochs=2, mode="dynamic", seed=3, rank=rank, world=2)
    if rank == 0:
        torch.save({"w": linear.weight.detach(), "h": history}, out)
    dist.barrier()  # leave together (see distributed.trainer._spawned)
    dist.destroy_process_group()


def test_two_workers_match_one_process(setup, tmp_path):
    """Same global batches and ε; only float summation order differs (see test_distributed's tolerance)."""
    bank = setup[3]
    single, h1 = train_classifier(bank, CFG, epochs=2, mode="dynamic", seed=3)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_spawned, args=(port, bank, str(tmp_path / "w2.pt")), nprocs=2, join=True)
    two = torch.load(tmp_path / "w2.pt")
    np.testing.assert_allclose([r["loss"] for r in two["h"]], [r["loss"] for r in h1], rtol=1e-5)
    assert (two["w"] - single.weight.detach()).abs().max().item() < 1e-4


def test_exact_sum_on_two_ray_train_workers_is_bitwise_one_process(setup, tmp_path, ray_session):
    """The classifier at scale on Ray Train (2 workers, scale.exact_sum with 2 streams) gives bitwise the
    weights and losses of one process that sums the same two stream gradients in the same order."""
    from zsl_scale.distributed import ScaleSettings, fit_classifier

    bank = setup[3]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in each Ray worker (scale.threads_per_worker): the same kernels
    try:
        single, h1 = train_classifier(bank, CFG, epochs=2, mode="dynamic", seed=3, streams=2)
    finally:
        torch.set_num_threads(threads)
    plain, _ = train_classifier(bank, CFG, epochs=2, mode="dynamic", seed=3)
    scale = ScaleSettings(workers=2, streams=2, exact_sum=True, device="cpu")
    linear, h2 = fit_classifier(bank, CFG, 2, scale, tmp_path, mode="dynamic", seed=3)
    assert torch.equal(linear.weight, single.weight) and torch.equal(linear.bias, single.bias)
    assert [r["loss"] for r in h2] == [r["loss"] for r in h1]
    # the exact sum changes the numbers at rounding level only, against plain one-process training
    assert (linear.weight - plain.weight).abs().max().item() < 1e-4
    assert not (tmp_path / ".classifier-ray").exists()  # Ray Train's run folder is cleaned up
