"""CADA-VAE training throughput (samples/s) on the Flowers features: zsl-scale vs the authors' way.

Baseline, measured in the same run: the same model trained as the authors' public code does it — eager
PyTorch, encoders/decoders held as separate modules with separate μ / logvar heads, one
``randperm``-indexed batch of 50 per step, warm-up weights rebuilt as tensors every step, separate
decoder calls for reconstruction and cross-reconstruction, ``torch.optim.Adam(amsgrad=True)`` with its
default (for-loop) implementation. Ours: ``zsl_scale.cada.train.train_vae`` (fused heads, one decoder call per
modality over stacked latents, fused Adam). Same batch size, same loss, same learning rate.

Ours runs in both precisions (``train.precision``: fp32, the config default, and bf16 autocast, docs/cada.md
"Training precision"); both rows are printed. The ratio uses bf16 by default: it is the fast setting whose
Flowers H was checked against fp32 over 3 seeds (within the seed spread); ``--precision fp32`` for the other.

Usage: ``python benchmarks/train_throughput.py [--steps 150] [--repeats 3] [--threads 2] [--precision fp32]``
Last line: ``ratio: <ours at --precision (default bf16) ÷ baseline samples/s>``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from zsl_scale.cada.model import CadaVae, paper_config
from zsl_scale.cada.scaling import FeatureScaler
from zsl_scale.cada.train import train_vae
from zsl_scale.core.config import TrainConfig
from zsl_scale.datasets.bundle import PACKAGED, load_bundle


class AuthorsEncoder(nn.Module):
    def __init__(self, d_in: int, hidden: int, latent: int) -> None:
        super().__init__()
        self.feature_encoder = nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU())
        self._mu = nn.Linear(hidden, latent)
        self._logvar = nn.Linear(hidden, latent)

    def forward(self, x):
        h = self.feature_encoder(x)
        return self._mu(h), self._logvar(h)


class AuthorsDecoder(nn.Module):
    def __init__(self, latent: int, hidden: int, d_out: int) -> None:
        super().__init__()
        self.feature_decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, d_out))

    def forward(self, z):
        return self.feature_decoder(z)


def _init(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight, gain=0.5)
        nn.init.zeros_(m.bias)


def authors_loop(x: torch.Tensor, y: torch.Tensor, att: torch.Tensor, steps: int, epoch: int = 30) -> float:
    """The authors' training loop (vaemodel.py, CPU-patched); returns samples/s."""
    enc_img, enc_att = AuthorsEncoder(x.shape[1], 1560, 64), AuthorsEncoder(att.shape[1], 1450, 64)
    dec_img, dec_att = AuthorsDecoder(64, 1660, x.shape[1]), AuthorsDecoder(64, 665, att.shape[1])
    modules = [enc_img, enc_att, dec_img, dec_att]
    params = []
    for m in modules:
        m.apply(_init)
        params += list(m.parameters())
    opt = torch.optim.Adam(params, lr=1.5e-4, betas=(0.9, 0.999), eps=1e-08, weight_decay=0, amsgrad=True)
    l1 = nn.L1Loss(reduction="sum")

    def reparameterize(mu, logvar):
        sigma = torch.exp(logvar)
        eps = torch.randn(logvar.size()[0], 1).expand(sigma.size())
        return mu + sigma * eps

    def step() -> None:
        idx = torch.randperm(x.shape[0])[0:50]
        img, a = x[idx], att[y[idx]]
        opt.zero_grad()
        mu_img, logvar_img = enc_img(img)
        z_img = reparameterize(mu_img, logvar_img)
        mu_att, logvar_att = enc_att(a)
        z_att = reparameterize(mu_att, logvar_att)
        img_from_img, att_from_att = dec_img(z_img), dec_att(z_att)
        recon = l1(img_from_img, img) + l1(att_from_att, a)
        img_from_att, att_from_img = dec_img(z_att), dec_att(z_img)
        cross = l1(img_from_att, img) + l1(att_from_img, a)
        kld = (0.5 * torch.sum(1 + logvar_att - mu_att.pow(2) - logvar_att.exp())) + (
            0.5 * torch.sum(1 + logvar_img - mu_img.pow(2) - logvar_img.exp()))
        distance = torch.sqrt(torch.sum((mu_img - mu_att) ** 2, dim=1) + torch.sum(
            (torch.sqrt(logvar_img.exp()) - torch.sqrt(logvar_att.exp())) ** 2, dim=1)).sum()
        f1 = min(max((epoch - 21) / (75 - 21) * 2.37, 0), 2.37)
        f2 = min(max((epoch - 6) / (22 - 6) * 8.13, 0), 8.13)
        f3 = min(max((epoch - 0) / (93 - 0) * 0.25, 0), 0.25)
        cross_f, dist_f, beta = torch.FloatTensor([f1]), torch.FloatTensor([f2]), torch.FloatTensor([f3])
        loss = recon - beta * kld
        if cross_f > 0:
            loss = loss + cross_f * cross
        if dist_f > 0:
            loss = loss + dist_f * distance
        loss.backward()
        opt.step()

    for _ in range(10):  # warm-up
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * 50 / (time.perf_counter() - t)


def ours_loop(x: torch.Tensor, y: torch.Tensor, att: torch.Tensor, steps: int, precision: str = "fp32") -> float:
    """zsl-scale's training loop on ``steps`` batches of 50 (a mid-schedule epoch: every term active)."""
    n = steps * 50
    full = TrainConfig()
    cfg = TrainConfig(epochs=1, precision=precision).model_copy(update={
        "beta": full.beta.model_copy(update={"start": 0}), "gamma": full.gamma.model_copy(update={"start": 0}),
        "delta": full.delta.model_copy(update={"start": 0})})
    model = CadaVae(paper_config(x.shape[1], att.shape[1]))
    warm = x[:500]
    train_vae(model, warm, y[:500], att, cfg)
    idx = torch.randint(0, x.shape[0], (n,), generator=torch.Generator().manual_seed(0))
    xs, ys = x[idx], y[idx]
    t = time.perf_counter()
    train_vae(model, xs, ys, att, cfg)
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="bf16", help="the precision the ratio uses")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    bench = load_bundle(PACKAGED["flo"])
    rows = torch.as_tensor(bench.splits["trainval"])
    feats = torch.as_tensor(bench.features, dtype=torch.float32)[rows]
    x = FeatureScaler.fit(feats)(feats)
    y = torch.as_tensor(bench.labels)[rows]
    att = torch.as_tensor(bench.class_embeddings)
    runs: dict[str, list[float]] = {"authors (baseline)": [], "zsl-scale fp32": [], "zsl-scale bf16": []}
    for _ in range(args.repeats):  # interleaved, so that machine noise hits all alike
        runs["authors (baseline)"].append(authors_loop(x, y, att, args.steps))
        runs["zsl-scale fp32"].append(ours_loop(x, y, att, args.steps, "fp32"))
        runs["zsl-scale bf16"].append(ours_loop(x, y, att, args.steps, "bf16"))
    med = {k: statistics.median(v) for k, v in runs.items()}
    b = med["authors (baseline)"]
    print(f"{'loop':<28}{'samples/s (median)':>20}{'÷ baseline':>12}{'runs':>30}")
    for k, v in runs.items():
        print(f"{k:<28}{med[k]:>20.0f}{med[k] / b:>12.2f}{', '.join(f'{r:.0f}' for r in v):>30}")
    print(f"threads: {args.threads}, batch 50, Flowers trainval features ({x.shape[0]} x {x.shape[1]})")
    print(f"ratio: {med['zsl-scale ' + args.precision] / b:.2f}")


if __name__ == "__main__":
    main()
