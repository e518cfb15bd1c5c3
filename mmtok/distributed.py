"""Explicit cross-process reductions.

Every statistic that changes shared state (codebooks, health counts) goes through here, so a
single-process run and a multi-process run take the same code path; outside torch.distributed
each call is the identity.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sums `tensor` in place across processes and returns it."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def mean_keeping_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Mean over processes that keeps the local gradient (all_reduce itself is not differentiable)."""
    if not is_distributed():
        return tensor
    total = all_reduce_sum(tensor.detach().clone())
    return tensor + (total / world_size() - tensor).detach()


def broadcast(tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Overwrites `tensor` in place with process `src`'s copy and returns it."""
    if is_distributed():
        dist.broadcast(tensor, src=src)
    return tensor


def all_gather_rows(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenates every process's rows (first dim may differ between processes)."""
    if not is_distributed():
        return tensor
    count = torch.tensor([tensor.shape[0]], device=tensor.device)
    counts = [torch.zeros_like(count) for _ in range(world_size())]
    dist.all_gather(counts, count)
    most = int(max(c.item() for c in counts))
    padded = tensor.new_zeros((most, *tensor.shape[1:]))
    padded[: tensor.shape[0]] = tensor
    gathered = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(gathered, padded)
    return torch.cat([g[: int(c.item())] for g, c in zip(gathered, counts)])
