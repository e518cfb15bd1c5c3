"""Exponential moving average of a model's weights (the usual export target)."""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


class WeightEMA(nn.Module):
    """Parameters are averaged by torch's AveragedModel; buffers (codebooks, EMA cluster counts,
    flags) are copied, since averaging a codebook's bookkeeping would corrupt it."""

    def __init__(self, model: nn.Module, decay: float):
        super().__init__()
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=False)
        self.averaged.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.averaged.update_parameters(model)
        for mine, theirs in zip(self.averaged.module.buffers(), model.buffers()):
            mine.copy_(theirs)

    @property
    def model(self) -> nn.Module:
        return self.averaged.module
