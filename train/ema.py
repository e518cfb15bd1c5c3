"""Exponential moving average of a model's weights (the usual export target)."""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel


def warmup_ema_avg_fn(decay: float):
    """EMA whose decay ramps up as min(decay, (1 + n) / (10 + n)) over the first updates: with a
    fixed 0.999, a 1,200-step run would keep 30 % of its random initial weights (0.999^1200)."""

    def average(averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor) -> torch.Tensor:
        ramp = ((1 + num_averaged) / (10 + num_averaged)).clamp(max=decay).to(averaged.dtype)
        return averaged * ramp + current * (1 - ramp)

    return average


class WeightEMA(nn.Module):
    """Parameters are averaged by torch's AveragedModel (with a warm-up of the decay); buffers
    (codebooks, EMA cluster counts, flags) are copied, since averaging a codebook's bookkeeping
    would corrupt it."""

    def __init__(self, model: nn.Module, decay: float):
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.averaged = AveragedModel(model, avg_fn=warmup_ema_avg_fn(decay), use_buffers=False)
        self.averaged.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.averaged.update_parameters(model)
        for mine, theirs in zip(self.averaged.module.buffers(), model.buffers()):
            mine.copy_(theirs)

    @property
    def model(self) -> nn.Module:
        return self.averaged.module
