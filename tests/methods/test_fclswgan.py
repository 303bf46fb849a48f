"""f-CLSWGAN's gradient penalty against a hand-derived autograd value on a tiny linear critic."""

from __future__ import annotations

import torch
from torch import nn

from zsl_scale.methods.fclswgan import gradient_penalty, mlp


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
