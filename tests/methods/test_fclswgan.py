"""f-CLSWGAN: the gradient penalty against hand-derived and autograd values; the GAN's resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from zsl_scale.methods.fclswgan import FclswganTrainer, gradient_penalty, mlp


def test_gradient_penalty_of_a_linear_critic_is_closed_form() -> None:
    # D(x, s) = wᵀ[x; s] + b has ∇ₓD = w_x everywhere, so GP = λ (‖w_x‖ − 1)² whatever the mix.
    critic = nn.Linear(3 + 2, 1)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[3.0, 0.0, 4.0, 7.0, -1.0]]))
    real, fake, cond = torch.rand(4, 3), torch.rand(4, 3), torch.rand(4, 2)
    gp = gradient_penalty(critic, real, fake, cond, torch.rand(4, 1), lam=10.0)
    assert gp.item() == torch.tensor(10.0 * (5.0 - 1.0) ** 2).item()


def test_gradient_penalty_matches_autograd_per_sample_on_an_mlp() -> None:
    torch.manual_seed(0)
    critic = mlp(3 + 2, 1, hidden=5)
    real, fake, cond, alpha = torch.rand(4, 3), torch.rand(4, 3), torch.rand(4, 2), torch.rand(4, 1)
    gp = gradient_penalty(critic, real, fake, cond, alpha, lam=10.0)
    norms = []
    for i in range(4):  # one sample at a time, with torch.func-free autograd
        xi = (alpha[i] * real[i] + (1 - alpha[i]) * fake[i]).requires_grad_(True)
        (g,) = torch.autograd.grad(critic(torch.cat([xi, cond[i]]))[0], xi)
        norms.append(g.norm())
    want = 10.0 * ((torch.stack(norms) - 1) ** 2).mean()
    torch.testing.assert_close(gp, want)
    gp.backward()  # the penalty is differentiable w.r.t. the critic (create_graph=True)
    assert critic[0].weight.grad is not None and critic[0].weight.grad.abs().sum() > 0


def _tiny_data(state_dir=None, log=None):
    from zsl_scale.methods.base import TrainData

    gen = torch.Generator().manual_seed(3)
    y = torch.arange(4).repeat_interleave(10)
    emb = torch.rand(6, 5, generator=gen)
    x = torch.rand(40, 7, generator=gen) + y[:, None].float()
    return TrainData(x, y, emb, unseen=np.array([4, 5]), state_dir=state_dir, log=log)


class _Stop(Exception):
    pass


def test_an_interrupted_gan_resumes_to_bitwise_the_uninterrupted_weights(tmp_path) -> None:
    torch.set_num_threads(1)
    straight = FclswganTrainer(_tiny_data(), seed=0).train_gan(12, hidden=16)

    first = FclswganTrainer(_tiny_data(tmp_path), seed=0)
    first.checkpoint_seconds = 0.0  # save after every step; stop like a killed run after step 5
    first.on_checkpoint = lambda step: (_ for _ in ()).throw(_Stop()) if step == 5 else None
    with pytest.raises(_Stop):
        first.train_gan(12, hidden=16)
    (state,) = tmp_path.glob("gan-*.pt")
    assert torch.load(state, weights_only=True)["step"] == 5

    steps, said = [], []
    second = FclswganTrainer(_tiny_data(tmp_path, said.append), seed=0)
    second.checkpoint_seconds, second.on_checkpoint = 0.0, steps.append
    resumed = second.train_gan(12, hidden=16)
    assert steps[0] == 6  # picked up after step 5, not from scratch
    assert said[0].startswith("GAN (12 steps, 16 wide): resuming at step 5; state every 0 s in ")
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)

    # Finished: the state holds the generator only, and a re-run reuses it without training.
    assert set(torch.load(state, weights_only=True)) == {"step", "g"}
    again = FclswganTrainer(_tiny_data(tmp_path), seed=0)
    again.on_checkpoint = lambda step: pytest.fail("a finished GAN was trained again")
    for a, b in zip(straight.state_dict().values(), again.train_gan(12, hidden=16).state_dict().values(), strict=True):
        assert torch.equal(a, b)

    # Other data (one feature changed) or another seed never resume that state.
    other = _tiny_data(tmp_path)
    other.x[0, 0] += 1.0
    paths = {FclswganTrainer(other, 0).state_path(12, 16, 1e-4), FclswganTrainer(_tiny_data(tmp_path), 1).state_path(
        12, 16, 1e-4), state}
    assert len(paths) == 3


def test_a_damaged_gan_state_is_one_clear_error(tmp_path) -> None:
    from zsl_scale.core import DataError

    trainer = FclswganTrainer(_tiny_data(tmp_path), seed=0)
    trainer.state_path(3, 16, 1e-4).write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="delete it to train this GAN from the start"):
        trainer.train_gan(3, hidden=16)


def test_the_gan_reports_progress_without_changing_its_weights(tmp_path) -> None:
    torch.set_num_threads(1)
    silent = FclswganTrainer(_tiny_data(), seed=0).train_gan(4, hidden=16)
    lines: list[str] = []
    talking = FclswganTrainer(_tiny_data(tmp_path, lines.append), seed=0)
    talking.progress_seconds = 0.0  # a line after every step
    g = talking.train_gan(4, hidden=16)
    for a, b in zip(silent.state_dict().values(), g.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # reading the losses for the log draws no random numbers
    assert lines[0].startswith("GAN (4 steps, 16 wide): training; state every 300 s in ")
    steps = [line for line in lines if line.startswith("GAN step ")]
    assert [s.split()[2] for s in steps] == ["1/4", "2/4", "3/4", "4/4"]
    assert steps[-1].endswith("ETA 00:00:00") and " s/step " in steps[-1]
    FclswganTrainer(_tiny_data(tmp_path, lines.append), seed=0).train_gan(4, hidden=16)
    assert lines[-1].startswith("GAN (4 steps, 16 wide): reusing the finished generator ")
