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


def uniform_utilization(tokens: int, codebook_size: int) -> float:
    """The expected share of a codebook's codes seen when `tokens` ids are drawn uniformly:
    1 - (1 - 1/K)^N, about 1 - e^(-N/K)."""
    if codebook_size == 1:
        return 1.0 if tokens else 0.0
    return -math.expm1(tokens * math.log1p(-1 / codebook_size))


def describe_use(stats: dict) -> str:
    """One line on a codebook's use, relative to what uniform use shows over the same tokens."""
    if "use_vs_uniform" not in stats:  # a report written before these were counted
        return f"{stats['utilization']:.1%} of codes used over {stats['total']:,} tokens"
    return (
        f"{stats['utilization']:.1%} of {stats['codebook_size']:,} codes used over {stats['total']:,} tokens "
        f"({stats['use_vs_uniform']:.0%} of the {stats['uniform_utilization']:.1%} that uniform use would show), "
        f"perplexity {stats['perplexity']:,.0f} ({stats['perplexity_share']:.1%} of the codebook)"
    )


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
        """One dict per codebook: utilization, perplexity, entropy_bits, dead_codes, top_share, total,
        codebook_size, uniform_utilization (the share uniform use would show over `total` tokens),
        use_vs_uniform (utilization over that) and perplexity_share (perplexity over the size)."""
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
                        codebook_size=counts.numel(),
                        uniform_utilization=0.0,
                        use_vs_uniform=0.0,
                        perplexity_share=0.0,
                    )
                )
                continue
            p = counts.double() / total
            nonzero = p[p > 0]
            entropy_nats = float(-(nonzero * nonzero.log()).sum())
            size = counts.numel()
            uniform = uniform_utilization(total, size)
            stats.append(
                dict(
                    utilization=used / size,
                    perplexity=math.exp(entropy_nats),
                    entropy_bits=entropy_nats / math.log(2),
                    dead_codes=size - used,
                    top_share=float(p.max()),
                    total=total,
                    codebook_size=size,
                    # The window decides how many codes can show up at all: 21,888 tokens drawn
                    # uniformly from 15,360 codes reach 76 %, not 100 %. These judge use at any window.
                    uniform_utilization=uniform,
                    use_vs_uniform=(used / size) / uniform,
                    perplexity_share=math.exp(entropy_nats) / size,
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
