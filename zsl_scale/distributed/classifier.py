"""The final linear softmax classifier at scale: up to ~21.8K classes, latents generated on the fly.

The paper trains it on 200 latents per seen class (encoded image features, sampled with noise) and 400
per unseen class (encoded class embeddings, sampled). At ImageNet-21K scale that set is ~8.5M × 128
floats (4.4 GB), so it is never materialised. Instead a *bank* holds the Gaussians the latents are
drawn from — (μ, logvar) of up to ``seen_samples`` reservoir-sampled images per seen class and of every
unseen class embedding (≈ 220K × 256 floats) — and each training sample is a (bank row, ε) pair:

* ``fixed``: the paper's set: sample *n* always uses the same bank row and the same ε (a fixed
  permutation-free noise vector of N scalars), so every epoch revisits the same latents;
* ``dynamic``: the paper's Figure 5 (right): fresh ε every step, so no latent is used twice.

Training is data-parallel like the VAE, on Ray Train workers (:mod:`zsl_scale.distributed.classifier_ray`)
or in one process: every worker computes the cross-entropy of its slice of the global batch, normalised
by the *global* batch size, and DDP all-reduces gradients with a SUM hook, so N workers take the same
steps as one up to float rounding; with ``scale.exact_sum`` the per-stream gradients are added in stream
order instead (the VAE's :mod:`~zsl_scale.distributed.exact` scheme): N workers give bitwise the weights
of one. z = μ + σ·ε uses one scalar ε per sample (the authors' variant).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow.parquet as pq
import torch
import torch.distributed as dist
from torch import Tensor, nn

from zsl_scale.cada import CadaVae, FeatureScaler
from zsl_scale.core import ClassifierConfig, DataError
from zsl_scale.distributed.exact import gather_streams, ordered_sum
from zsl_scale.distributed.streaming import ClassTable, FeatureSource
from zsl_scale.distributed.trainer import sum_allreduce_hook

Mode = Literal["fixed", "dynamic"]


@dataclass
class LatentBank:
    """Gaussians to sample classifier latents from, and the fixed sample set over them."""

    wnids: list[str]  # the label space: seen classes, then unseen
    mu: Tensor  # [R, L]
    logvar: Tensor  # [R, L]
    row_class: Tensor  # [R] class index of each bank row
    sample_row: Tensor  # [N] bank row of each training sample
    sample_eps: Tensor  # [N] the fixed ε of each sample (``fixed`` mode)
    reparam: str = "consistent"

    @property
    def num_samples(self) -> int:
        return int(self.sample_row.shape[0])

    def latents(self, idx: Tensor, eps: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(z, label) of samples ``idx``; ε from the fixed set unless given (dynamic mode)."""
        rows = self.sample_row[idx]
        e = (self.sample_eps[idx] if eps is None else eps).unsqueeze(1)
        logvar = self.logvar[rows]
        std = torch.exp(logvar) if self.reparam == "authors" else torch.exp(0.5 * logvar)
        return self.mu[rows] + std * e, self.row_class[rows]


def _reservoir(keys: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` smallest keys per label: a uniform sample without replacement per class."""
    order = np.lexsort((keys, labels))
    sorted_labels = labels[order]
    starts = np.searchsorted(sorted_labels, sorted_labels, side="left")
    return order[np.arange(len(order)) - starts < k]


@torch.no_grad()
def build_bank(
    vae: CadaVae,
    source: FeatureSource,
    classes: ClassTable,
    seen: list[str],
    unseen: list[str],
    cfg: ClassifierConfig,
    scaler: FeatureScaler,
    seed: int = 0,
    device: torch.device | str = "cpu",
    batch_rows: int = 8192,
) -> LatentBank:
    """One streaming pass over the seen-class features (bounded memory) plus the unseen embeddings.

    ``scaler`` is the VAE's training feature scaler: the features are encoded exactly as in training.
    """
    vae = vae.to(device).eval()
    scaler.check_dim(source.dim, f"feature set {source.directory}")
    stats = scaler.torch_stats(device)
    seen_table = ClassTable(seen, np.zeros((len(seen), 1), np.float32))
    rng = np.random.default_rng([seed, 0xBA4C])
    keep_mu, keep_lv, keep_y, keep_k = (np.zeros((0, vae.cfg.latent_dim), np.float32),) * 2 + (
        np.zeros(0, np.int64), np.zeros(0))
    for path in source.files:
        for rb in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=["wnid", "feature"]):
            wanted = np.isin(rb.column(0).to_numpy(zero_copy_only=False), seen)
            if not wanted.any():
                continue
            feats = rb.column(1).flatten().to_numpy(zero_copy_only=False).reshape(len(rb), source.dim)[wanted]
            y = seen_table.indices(rb.column(0).filter(wanted))
            mu, lv = vae.encode("image", scaler.transform_torch(torch.from_numpy(feats).to(device), stats))
            keys = rng.random(len(y))
            keep_mu, keep_lv = np.concatenate([keep_mu, mu.cpu().numpy()]), np.concatenate([keep_lv, lv.cpu().numpy()])
            keep_y, keep_k = np.concatenate([keep_y, y]), np.concatenate([keep_k, keys])
            sel = _reservoir(keep_k, keep_y, cfg.seen_samples)
            keep_mu, keep_lv, keep_y, keep_k = keep_mu[sel], keep_lv[sel], keep_y[sel], keep_k[sel]
    missing = sorted(set(range(len(seen))) - set(keep_y.tolist()))
    if missing:
        raise DataError(f"seen class {seen[missing[0]]} has no image features in {source.directory}")
    order = np.argsort(keep_y, kind="stable")
    keep_mu, keep_lv, keep_y = keep_mu[order], keep_lv[order], keep_y[order]
    emb = torch.from_numpy(classes.subset(unseen).vectors).to(device)
    umu, ulv = vae.encode("class", emb) if unseen else (torch.zeros(0, vae.cfg.latent_dim),) * 2
    mu = torch.cat([torch.from_numpy(keep_mu), umu.cpu()])
    logvar = torch.cat([torch.from_numpy(keep_lv), ulv.cpu()])
    row_class = torch.cat([torch.from_numpy(keep_y), torch.arange(len(seen), len(seen) + len(unseen))])
    # sample j of seen class c uses its reservoir row j mod K_c; every unseen sample its class row
    counts = np.bincount(keep_y, minlength=len(seen))
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    seen_rows = [first[c] + np.arange(cfg.seen_samples) % counts[c] for c in range(len(seen))]
    unseen_rows = [np.full(cfg.unseen_samples, len(keep_y) + u) for u in range(len(unseen))]
    sample_row = torch.from_numpy(np.concatenate(seen_rows + unseen_rows).astype(np.int64))
    gen = torch.Generator().manual_seed(seed)
    return LatentBank(seen + unseen, mu, logvar, row_class, sample_row,
                      torch.randn(len(sample_row), generator=gen), vae.cfg.reparam)


def _indices(bank: LatentBank, mode: Mode, seed: int, epoch: int, batch: int) -> Iterator[tuple[Tensor, Tensor | None]]:
    """Global batches of (sample indices, ε or None): a seeded permutation, or fresh draws (dynamic)."""
    n = bank.num_samples
    gen = torch.Generator().manual_seed(seed * 7919 + epoch)
    if mode == "fixed":
        perm = torch.randperm(n, generator=gen)
        for s in range(n // batch):
            yield perm[s * batch : (s + 1) * batch], None
    else:
        for _ in range(n // batch):
            yield torch.randint(n, (batch,), generator=gen), torch.randn(batch, generator=gen)


def train_classifier(
    bank: LatentBank,
    cfg: ClassifierConfig,
    epochs: int,
    mode: Mode = "fixed",
    seed: int = 0,
    rank: int = 0,
    world: int = 1,
    device: torch.device | str = "cpu",
    validate: Any = None,
    streams: int | None = None,
) -> tuple[nn.Linear, list[dict[str, float]]]:
    """Train the softmax; ``validate(linear) -> float`` picks the best epoch (on validation data only).

    Runs as rank ``rank`` of ``world`` when a process group is initialised (each rank takes every
    ``world``-th row of each global batch), else alone. With ``streams`` (``scale.exact_sum``) every global
    batch is cut into that many streams (stream *v*: rows ``v::streams``), rank *r* computes the gradient
    of its streams (``v % world == r``) one by one and all ranks add all of them in stream order
    (:mod:`zsl_scale.distributed.exact`): the weights are then bitwise identical for every ``world``
    that divides ``streams``, one worker included.
    """
    device = torch.device(device)
    torch.manual_seed(seed)
    latent = bank.mu.shape[1]
    linear = nn.Linear(latent, len(bank.wnids)).to(device)
    net: nn.Module = linear
    if streams is not None and streams % world:
        raise DataError(f"exact sum: {world} workers must divide the {streams} streams")
    if streams is None and dist.is_available() and dist.is_initialized():
        net = nn.parallel.DistributedDataParallel(linear, device_ids=[device] if device.type == "cuda" else None)
        net.register_comm_hook(None, sum_allreduce_hook)
    # the fused kernel where torch has one (as the reference classifier and the VAE): the same algorithm, and
    # Adam's per-step overhead was a tenth of an ImageNet-samples job's classifier time
    opt = torch.optim.Adam(linear.parameters(), lr=cfg.lr, betas=cfg.betas, fused=device.type in ("cpu", "cuda"))
    bank_dev = LatentBank(bank.wnids, bank.mu.to(device), bank.logvar.to(device), bank.row_class.to(device),
                          bank.sample_row.to(device), bank.sample_eps.to(device), bank.reparam)
    history, best, best_state = [], -1.0, None
    for epoch in range(epochs):
        total, steps = torch.zeros((), dtype=torch.float64, device=device), 0
        for idx, eps in _indices(bank, mode, seed, epoch, cfg.batch_size):
            if streams is not None:
                total += _exact_step(linear, opt, bank_dev, idx, eps, cfg.batch_size, streams, rank, world)
                steps += 1
                continue
            mine = slice(rank, None, world)
            z, y = bank_dev.latents(idx[mine].to(device), None if eps is None else eps[mine].to(device))
            loss = nn.functional.cross_entropy(net(z), y, reduction="sum") / cfg.batch_size
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach().double()
            steps += 1
        if streams is None and dist.is_available() and dist.is_initialized():
            dist.all_reduce(total)
        row = {"epoch": epoch, "loss": float(total) / max(1, steps)}
        if validate is not None:
            row["val"] = float(validate(linear))
            if row["val"] > best:
                best, best_state = row["val"], {k: v.clone() for k, v in linear.state_dict().items()}
        history.append(row)
    if best_state is not None:
        linear.load_state_dict(best_state)
    return linear, history


def _exact_step(linear: nn.Linear, opt: torch.optim.Optimizer, bank: LatentBank, idx: Tensor, eps: Tensor | None,
                batch: int, streams: int, rank: int, world: int) -> Tensor:
    """One Adam step on the stream-ordered sum of per-stream gradients; returns the batch loss (float64).

    Stream *v*'s gradient depends only on its rows and the weights, not on where it is computed, and
    every rank adds the gathered gradients in the same order, so the step is the same for any ``world``.
    """
    params = list(linear.parameters())
    device = params[0].device
    grads, losses = [], []
    for v in range(rank, streams, world):
        z, y = bank.latents(idx[v::streams].to(device), None if eps is None else eps[v::streams].to(device))
        loss = nn.functional.cross_entropy(linear(z), y, reduction="sum") / batch
        grads.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)]))
        losses.append(loss.detach().double().reshape(1))
    total = ordered_sum(gather_streams(torch.stack(grads), rank, world, streams))
    offset = 0
    for p in params:
        p.grad = total[offset : offset + p.numel()].view_as(p).clone()
        offset += p.numel()
    opt.step()
    return ordered_sum(gather_streams(torch.stack(losses), rank, world, streams))[0]


def save_classifier(path: Any, linear: nn.Linear, wnids: list[str], history: list[dict[str, float]],
                    epochs: int, **extra: Any) -> None:
    """Write the final classifier (``weight``, ``bias``, ``wnids`` = row order, ``history``, ``epochs``)
    atomically: the one format the score stage and ``zsl-scale imagenet evaluate`` read."""
    from zsl_scale.core import atomic_path

    with atomic_path(path) as tmp:
        torch.save({"weight": linear.weight.detach().cpu(), "bias": linear.bias.detach().cpu(), "wnids": wnids,
                    "history": history, "epochs": int(epochs), **extra}, tmp)


@torch.no_grad()
def classify_features(vae: CadaVae, linear: nn.Linear, features: Tensor, scaler: FeatureScaler, k: int = 1,
            chunk: int = 65536) -> Tensor:
    """Top-``k`` class indices of raw image features (scaled, then the image encoder's μ), chunked."""
    out = []
    stats = scaler.torch_stats(features.device)
    for s in range(0, features.shape[0], chunk):
        mu, _ = vae.encode("image", scaler.transform_torch(features[s : s + chunk], stats))
        out.append(linear(mu).topk(k, dim=1).indices)
    return torch.cat(out)
