"""f-CLSWGAN (Xian et al., CVPR 2018): generate unseen-class features, then train a plain softmax.

A conditional WGAN-GP learns ``G(z, s_y)`` → image features of class ``y``: generator and critic are
MLPs with one 4096-unit hidden layer (LeakyReLU 0.2), ReLU on generated features, noise of the
embedding's width; gradient penalty λ = 10, 5 critic steps per generator step, Adam lr 1e-4 β1 0.5,
batch 64, plus β × the cross-entropy of a softmax pre-trained on real seen features (β 0.1, the authors'
FLO value). Then ``n_unseen`` features per unseen class are generated and a softmax classifier over
seen ∪ unseen trains on real seen + generated unseen features; its epochs are chosen on validation.

Why the default schedule is shorter than the authors' (~80 epochs ≈ 7,000 generator steps on FLO, 4096
wide): CPU cores. ``gan_steps`` and ``hidden`` are hyper-parameters of the grid (docs/methods.md: what
they cost and what they give); the classifier over generated features is where validation selects.

Resume: the GAN is the one long stage of this method (the authors' schedule is hours per GAN on two CPU
cores, three GANs per seed). When the phase's data names a ``state_dir``, the full training state —
generator, critic, pre-trained softmax, both Adam states, the noise generator's state and the step — is
saved there every :attr:`FclswganTrainer.checkpoint_seconds` (atomically), and the finished generator
replaces it. A re-run picks up at the saved step and, because every draw comes from the saved
``torch.Generator`` and the batches are the same, ends with bitwise the weights of an uninterrupted run on the
same machine. The file name is a hash of everything the GAN depends on (the phase's features, labels,
embeddings and unseen classes, the seed and the GAN hyper-parameters), so a changed input never resumes a
stale state.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from zsl_scale.cada import fit_linear_softmax
from zsl_scale.core import ClassifierConfig, DataError, atomic_path, format_eta, load_torch_file
from zsl_scale.methods.base import Fitted, Hyper, OnEpoch, TrainData, generator, one_of

# The paper's critic/generator width is 4096 (HIDDEN) and FLO trains ~7,000 generator steps; on two CPU cores one
# 4096-wide step at Flowers' shapes costs ~2.5 CPU-seconds (docs/methods.md), so the registry's default schedule is
# 1024 wide and 1,000 steps (~20 CPU-min per Flowers seed; 200 steps gave H 5, 1,000 give H 44 there) with the
# authors' 1,200 generated features per unseen class. On a GPU: {"hidden": [4096], "gan_steps": [7000]}.
GRID = {"gan_steps": [1000], "n_unseen": [1200], "epochs": [15], "hidden": [1024]}
HIDDEN, GP_LAMBDA, CRITIC_STEPS, BATCH, CLS_BETA = 4096, 10.0, 5, 64, 0.1
STATE_VERSION = 1  # bump when the GAN's training changes, so that old states are not resumed


def mlp(n_in: int, n_out: int, hidden: int = HIDDEN, out_relu: bool = False) -> nn.Sequential:
    """One hidden layer with LeakyReLU(0.2); weights N(0, 0.02), zero bias (the authors' init)."""
    layers: list[nn.Module] = [nn.Linear(n_in, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, n_out)]
    if out_relu:
        layers.append(nn.ReLU())
    net = nn.Sequential(*layers)
    for m in net:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            nn.init.zeros_(m.bias)
    return net


def gradient_penalty(critic: nn.Module, real: Tensor, fake: Tensor, cond: Tensor, alpha: Tensor,
                     lam: float = GP_LAMBDA) -> Tensor:
    """WGAN-GP: ``λ · mean((‖∇_x̂ D(x̂, s)‖₂ − 1)²)`` at ``x̂ = α·real + (1 − α)·fake`` (α ``[B, 1]``)."""
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    out = critic(torch.cat([mixed, cond], dim=1))
    (grad,) = torch.autograd.grad(out.sum(), mixed, create_graph=True)
    return lam * ((grad.norm(2, dim=1) - 1) ** 2).mean()


class FclswganTrainer:
    """Trains the GAN once per ``(gan_steps, n_unseen)``, then the final softmax for any epoch count.

    Attributes:
        checkpoint_seconds: wall seconds between saved GAN states (when the data names a ``state_dir``).
        progress_seconds: wall seconds between progress lines (when the data names a ``log``).
        on_checkpoint: called with the step after each saved state (progress; tests interrupt here).
    """

    checkpoint_seconds: float = 300.0
    progress_seconds: float = 60.0

    def __init__(self, data: TrainData, seed: int) -> None:
        self.data, self.seed = data, seed
        self.on_checkpoint: Callable[[int], None] | None = None
        self.space = torch.as_tensor(sorted({*data.seen.tolist(), *data.unseen.tolist()}), device=data.device)
        lookup = torch.full((data.emb.shape[0],), -1, dtype=torch.long, device=data.device)
        lookup[self.space] = torch.arange(len(self.space), device=data.device)
        self.lookup = lookup
        self.cache: dict[tuple, tuple[Tensor, Tensor]] = {}

    def _pretrained_softmax(self, saved: dict[str, Tensor] | None = None) -> nn.Linear:
        """The softmax on real seen features whose cross-entropy steers the generator (frozen)."""
        d = self.data
        if saved is not None:
            layer = nn.Linear(d.x.shape[1], len(self.space)).to(d.device)
            layer.load_state_dict(saved)
        else:
            layer = fit_linear_softmax(d.x, self.lookup[d.y], len(self.space), ClassifierConfig(), 5,
                                       seed=self.seed + 10)
        layer.requires_grad_(False)
        return layer

    def state_path(self, steps: int, hidden: int, lr: float) -> Path | None:
        """Where this GAN's resumable state lives (None: the data names no ``state_dir``)."""
        d = self.data
        if d.state_dir is None:
            return None
        h = hashlib.sha256(repr((STATE_VERSION, self.seed, steps, hidden, lr, BATCH, CRITIC_STEPS, GP_LAMBDA,
                                 CLS_BETA, tuple(int(c) for c in d.unseen))).encode())
        for t in (d.x, d.y, d.emb):
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return Path(d.state_dir) / f"gan-{h.hexdigest()[:20]}.pt"

    @staticmethod
    def _load(path: Path, device: torch.device) -> dict[str, Any]:
        try:  # written by rename, so only a foreign or damaged file fails here
            return load_torch_file(path, "saved GAN state", map_location=device)
        except DataError as exc:
            raise DataError(f"{exc}; delete it to train this GAN from the start") from None

    def _save(self, path: Path, state: dict[str, Any]) -> None:
        with atomic_path(path, suffix=".pt") as tmp:
            torch.save(state, tmp)

    def train_gan(self, steps: int, hidden: int = HIDDEN, lr: float = 1e-4) -> nn.Sequential:
        """``steps`` generator updates, each after :data:`CRITIC_STEPS` critic updates (resumable, see module doc)."""
        d, dev = self.data, self.data.device
        torch.manual_seed(self.seed)
        gen = generator(self.seed)
        e_dim, x_dim = d.emb.shape[1], d.x.shape[1]
        g = mlp(e_dim * 2, x_dim, hidden, out_relu=True).to(dev)
        path = self.state_path(steps, hidden, lr)
        saved = self._load(path, dev) if path is not None and path.exists() else None
        if saved is not None and saved["step"] >= steps:
            g.load_state_dict(saved["g"])
            self._say(f"GAN ({steps} steps, {hidden} wide): reusing the finished generator {path}")
            return g
        critic = mlp(x_dim + e_dim, 1, hidden).to(dev)
        opt_g = torch.optim.Adam(g.parameters(), lr=lr, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(critic.parameters(), lr=lr, betas=(0.5, 0.999))
        clf, ce = self._pretrained_softmax(saved["clf"] if saved else None), nn.CrossEntropyLoss()
        start = 0
        if saved is not None:
            g.load_state_dict(saved["g"])
            critic.load_state_dict(saved["critic"])
            opt_g.load_state_dict(saved["opt_g"])
            opt_d.load_state_dict(saved["opt_d"])
            gen.set_state(saved["rng"])
            start = saved["step"]
        n = d.x.shape[0]

        def batch() -> tuple[Tensor, Tensor, Tensor, Tensor]:
            idx = torch.randint(0, n, (BATCH,), generator=gen).to(dev)
            z = torch.randn((BATCH, e_dim), generator=gen).to(dev)
            return d.x[idx], d.y[idx], d.emb[d.y[idx]], z

        where = f"; state every {self.checkpoint_seconds:.0f} s in {path}" if path is not None else ""
        self._say(f"GAN ({steps} steps, {hidden} wide): {f'resuming at step {start}' if start else 'training'}{where}")
        last = shown = t0 = time.monotonic()
        for step in range(start, steps):
            for _ in range(CRITIC_STEPS):
                real, _, s, z = batch()
                fake = g(torch.cat([z, s], 1)).detach()
                alpha = torch.rand((BATCH, 1), generator=gen).to(dev)
                loss_d = (critic(torch.cat([fake, s], 1)).mean() - critic(torch.cat([real, s], 1)).mean()
                          + gradient_penalty(critic, real, fake, s, alpha))
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
            _, y, s, z = batch()
            fake = g(torch.cat([z, s], 1))
            loss_g = -critic(torch.cat([fake, s], 1)).mean() + CLS_BETA * ce(clf(fake), self.lookup[y])
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            now = time.monotonic()
            if self.data.log is not None and (now - shown >= self.progress_seconds or step + 1 == steps):
                shown, rate = now, (now - t0) / (step + 1 - start)
                self._say(f"GAN step {step + 1}/{steps}  critic {loss_d.item():.3f}  G {loss_g.item():.3f}  "
                          f"{rate:.2f} s/step  ETA {format_eta(rate * (steps - step - 1))}")
            if path is not None and step + 1 < steps and now - last >= self.checkpoint_seconds:
                self._save(path, {"step": step + 1, "g": g.state_dict(), "critic": critic.state_dict(),
                                  "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                                  "clf": clf.state_dict(), "rng": gen.get_state()})
                last = time.monotonic()
                if self.on_checkpoint is not None:
                    self.on_checkpoint(step + 1)
        if path is not None:
            self._save(path, {"step": steps, "g": g.state_dict()})
        return g

    def _say(self, msg: str) -> None:
        if self.data.log is not None:
            self.data.log(msg)

    @torch.no_grad()
    def synthesize(self, g: nn.Sequential, n_per_class: int) -> tuple[Tensor, Tensor]:
        """``n_per_class`` generated features per unseen class (seeded; drawn on CPU)."""
        d, gen = self.data, generator(self.seed + 20)
        ys = torch.as_tensor(d.unseen, device=d.device).repeat_interleave(n_per_class)
        z = torch.randn((len(ys), d.emb.shape[1]), generator=gen).to(d.device)
        return g(torch.cat([z, d.emb[ys]], 1)), ys

    def _training_set(self, hp: Hyper) -> tuple[Tensor, Tensor]:
        steps, n_unseen = int(hp["gan_steps"]), int(hp["n_unseen"])
        hidden, lr = int(hp.get("hidden", HIDDEN)), float(hp.get("gan_lr", 1e-4))
        key = (steps, n_unseen, hidden, lr)
        if key not in self.cache:
            x_gen, y_gen = self.synthesize(self.train_gan(steps, hidden, lr), n_unseen)
            self.cache[key] = (torch.cat([self.data.x, x_gen]), self.lookup[torch.cat([self.data.y, y_gen])])
        return self.cache[key]

    def _fitted(self, layer: nn.Linear, epoch: int) -> Fitted:
        w, b, space = layer.weight.detach().clone(), layer.bias.detach().clone(), self.space.cpu().numpy()

        def weights(c):
            rows = torch.as_tensor(one_of(c, space, "f-CLSWGAN"), device=w.device)
            return w[rows], b[rows]

        return Fitted(embed=lambda q: q, weights=weights, info={"epochs": epoch})

    def fit(self, hp: Hyper, on_epoch: OnEpoch | None = None) -> Fitted:
        x, y = self._training_set(hp)
        cb = None if on_epoch is None else (lambda e, layer: on_epoch(e, self._fitted(layer, e)))
        ccfg = ClassifierConfig(batch_size=64, lr=float(hp.get("cls_lr", 1e-3)))
        layer = fit_linear_softmax(x, y, len(self.space), ccfg, int(hp["epochs"]), seed=self.seed + 30, on_epoch=cb)
        return self._fitted(layer, int(hp["epochs"]))
