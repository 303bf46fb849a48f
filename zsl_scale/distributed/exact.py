"""Worker-count-independent gradients: one gradient per data stream, summed in stream order everywhere.

DDP all-reduces the sum of each worker's gradient, and a worker that holds several streams computes one
gradient over their concatenated rows. Both sums are exact in real arithmetic and differ in the last
bits between worker counts; Adam (amsgrad) then amplifies the difference epoch after epoch, so a
1-worker and a 2-worker run of the same global batches end at different weights (docs/distributed.md).

``scale.exact_sum`` removes that by construction. Every worker computes one gradient *per stream*
(``torch.autograd.grad`` on that stream's rows alone), all workers all-gather them, and every worker adds
them in stream order ``((g₀ + g₁) + g₂) + …`` before the optimizer step. The gradient of stream *v* does
not depend on where it was computed (same rows, same weights, same noise, same kernels), and the order of
the additions does not depend on the worker count, so the weights after every step are bitwise identical
for any ``workers`` that divides ``streams`` — and, with two streams, equal to plain DDP's (``g₀ + g₁`` is
one addition, commutative in floating point). The cost: a worker holding k streams runs k smaller
forward/backward passes, and the exchange is an all-gather of ``streams`` gradient copies instead of an
all-reduce of one.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from zsl_scale.cada import LossTerms, LossWeights, precision_autocast


def local_stream_slices(per_stream: list[int], rank: int, world: int) -> list[slice]:
    """Row slices of this worker's streams (``v % world == rank``, in stream order) in its batch part."""
    mine = [per_stream[v] for v in range(len(per_stream)) if v % world == rank]
    bounds = np.concatenate([[0], np.cumsum(mine)]).astype(int)
    return [slice(int(a), int(b)) for a, b in pairwise(bounds)]


def gather_streams(local: Tensor, rank: int, world: int, streams: int) -> list[Tensor]:
    """Every stream's row of ``local`` ([k, …] on each rank), in stream order, on every rank."""
    if world == 1:
        return list(local.unbind(0))
    parts = [torch.empty_like(local) for _ in range(world)]
    dist.all_gather(parts, local.contiguous())
    return [parts[v % world][v // world] for v in range(streams)]


def exact_step(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: dict[str, Tensor],
    weights: LossWeights,
    slices: list[slice],
    loss_fn: Callable[..., LossTerms],
    streams: int,
    rank: int = 0,
    world: int = 1,
    precision: str = "fp32",
) -> Tensor:
    """One optimizer step whose gradient is the stream-ordered sum of per-stream gradients.

    ``batch`` holds this worker's rows (its streams concatenated in stream order, ``_eps`` the matching
    noise ``[modalities, rows, 1]``); ``slices`` cut it into streams. Returns the loss terms of every
    stream, ``[streams, 5]`` float64 in stream order (identical on every rank).
    """
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer.zero_grad(set_to_none=True)
    grads, terms = [], []
    for sl in slices:
        part: dict[str, Any] = {k: (v[:, sl] if k == "_eps" else v[sl]) for k, v in batch.items()}
        with precision_autocast(part, precision):
            t = loss_fn(module, part, weights)
        g = torch.autograd.grad(t.total, params, allow_unused=True)
        grads.append(torch.cat([(torch.zeros_like(p) if gi is None else gi).reshape(-1)
                                for p, gi in zip(params, g, strict=True)]))
        terms.append(t.stacked())
    total = ordered_sum(gather_streams(torch.stack(grads), rank, world, streams))
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = total[offset : offset + n].view_as(p)
        offset += n
    optimizer.step()
    return torch.stack(gather_streams(torch.stack(terms), rank, world, streams))


def ordered_sum(rows: Tensor | list[Tensor]) -> Tensor:
    """``((r₀ + r₁) + r₂) + …`` over the first dimension: the same additions for any worker count."""
    out = rows[0].clone()
    for r in rows[1:]:
        out += r
    return out
