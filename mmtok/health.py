"""Codebook health: how many codes are used, how evenly, and an alarm when a codebook collapses."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from mmtok import distributed


@dataclass(frozen=True)
class CollapseAlarm:
    codebook: int
    metric: str  # "utilization" or "perplexity"
    value: float
    floor: float

    def __str__(self) -> str:
        return f"codebook {self.codebook}: {self.metric} {self.value:.4g} is under the floor {self.floor:.4g}"


class CodebookMonitor:
    """Counts code usage over a window of batches.

    `update(ids)` is a local bincount (no communication, cheap enough for every step); counts are
    summed across processes only inside `compute()`. Negative ids (codebooks dropped by quantizer
    dropout) are ignored.
    """

    def __init__(
        self,
        codebook_size: int | list[int],
        num_codebooks: int = 1,
        *,
        utilization_floor: float = 0.05,
        perplexity_floor: float = 2.0,
    ):
        sizes = list(codebook_size) if isinstance(codebook_size, (list, tuple)) else [codebook_size] * num_codebooks
        if any(int(s) < 1 for s in sizes):
            raise ValueError(f"codebook sizes must be >= 1, got {sizes}")
        self.codebook_sizes = [int(s) for s in sizes]
        self.num_codebooks = len(sizes)
        self.utilization_floor, self.perplexity_floor = utilization_floor, perplexity_floor
        self.counts = [torch.zeros(size, dtype=torch.long) for size in self.codebook_sizes]

    def reset(self) -> None:
        for counts in self.counts:
            counts.zero_()

    @torch.no_grad()
    def update(self, ids: torch.Tensor) -> None:
        """ids: (..., num_codebooks) integer tensor, as in QuantizerOutput.ids."""
        if ids.shape[-1] != self.num_codebooks:
            raise ValueError(f"expected ids (..., {self.num_codebooks}), got {tuple(ids.shape)}")
        flat = ids.reshape(-1, self.num_codebooks)
        for c, counts in enumerate(self.counts):
            column = flat[:, c]
            column = column[column >= 0]
            if column.numel() and int(column.max()) >= counts.numel():
                raise ValueError(f"id {int(column.max())} out of range for codebook {c} of size {counts.numel()}")
            if counts.device != column.device:
                self.counts[c] = counts = counts.to(column.device)
            counts += torch.bincount(column, minlength=counts.numel())

    @torch.no_grad()
    def compute(self) -> list[dict[str, float]]:
        """One dict per codebook: utilization, perplexity, entropy_bits, dead_codes, top_share, total."""
        stats = []
        for counts in self.counts:
            counts = distributed.all_reduce_sum(counts.clone())
            total = int(counts.sum())
            used = int((counts > 0).sum())
            if total == 0:
                stats.append(
                    dict(
                        utilization=0.0,
                        perplexity=0.0,
                        entropy_bits=0.0,
                        dead_codes=counts.numel(),
                        top_share=0.0,
                        total=0,
                    )
                )
                continue
            p = counts.double() / total
            nonzero = p[p > 0]
            entropy_nats = float(-(nonzero * nonzero.log()).sum())
            stats.append(
                dict(
                    utilization=used / counts.numel(),
                    perplexity=math.exp(entropy_nats),
                    entropy_bits=entropy_nats / math.log(2),
                    dead_codes=counts.numel() - used,
                    top_share=float(p.max()),
                    total=total,
                )
            )
        return stats

    def alarms(self, stats: list[dict[str, float]] | None = None) -> list[CollapseAlarm]:
        """Codebooks whose utilization or perplexity fell under the floors (empty when healthy)."""
        stats = self.compute() if stats is None else stats
        found = []
        for c, s in enumerate(stats):
            if s["total"] == 0:
                continue
            if s["utilization"] < self.utilization_floor:
                found.append(CollapseAlarm(c, "utilization", s["utilization"], self.utilization_floor))
            if s["perplexity"] < self.perplexity_floor:
                found.append(CollapseAlarm(c, "perplexity", s["perplexity"], self.perplexity_floor))
        return found

    def log_dict(self, stats: list[dict[str, float]] | None = None, prefix: str = "codebook") -> dict[str, float]:
        """Flat {name: value} for trackers, e.g. codebook/0/utilization."""
        stats = self.compute() if stats is None else stats
        return {f"{prefix}/{c}/{key}": float(v) for c, s in enumerate(stats) for key, v in s.items()}
