"""PatchGAN discriminator (Isola et al. 2017, as used by VQGAN) for adversarial tokenizer training."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

__all__ = ["NORM_KINDS", "PatchGANDiscriminator"]

# GroupNorm is the default because BatchNorm's running statistics depend on the
# batch: with the small per-process batches of tokenizer training they are
# noisy, and under data parallelism each process would keep different
# statistics (and real/fake batches would be normalised separately). GroupNorm
# normalises each sample on its own, so it behaves the same everywhere.
NORM_KINDS = ("group", "batch", "none")


def _norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "group":
        # Up to 32 groups as usual, but always a divisor of the channel count.
        return nn.GroupNorm(math.gcd(32, channels), channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    return nn.Identity()


class PatchGANDiscriminator(nn.Module):
    """Fully convolutional discriminator giving one real/fake logit per image patch.

    Layout (pix2pix "n_layers" PatchGAN): a 4x4 stride-2 conv with LeakyReLU(0.2);
    ``num_layers - 1`` further 4x4 stride-2 conv + norm + LeakyReLU blocks that
    double the channels (capped at 8x ``base_channels``); one 4x4 stride-1 conv
    block; and a final 4x4 stride-1 conv to one channel. Returns logits of shape
    (B, 1, h, w); with num_layers=3, a 64x64 input gives 6x6 and 128x128 gives 14x14.
    """

    def __init__(
        self,
        in_channels: int = 3,
        base_channels: int = 64,
        num_layers: int = 3,
        norm: str = "group",
    ) -> None:
        super().__init__()
        if norm not in NORM_KINDS:
            raise ValueError(f"unknown norm {norm!r}; expected one of {NORM_KINDS}")
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        # A conv followed by a normalisation has its bias cancelled out.
        use_bias = norm == "none"

        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, base_channels, kernel_size=4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        channels = base_channels
        for n in range(1, num_layers + 1):
            out_channels = base_channels * min(2**n, 8)
            stride = 2 if n < num_layers else 1  # the last block keeps the resolution
            layers += [
                nn.Conv2d(channels, out_channels, kernel_size=4, stride=stride, padding=1, bias=use_bias),
                _norm_layer(norm, out_channels),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            channels = out_channels
        layers.append(nn.Conv2d(channels, 1, kernel_size=4, stride=1, padding=1))
        self.layers = nn.Sequential(*layers)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        # DCGAN/pix2pix initialisation: small normal weights keep early logits near zero.
        if isinstance(module, nn.Conv2d):
            nn.init.normal_(module.weight, 0.0, 0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.GroupNorm, nn.BatchNorm2d)):
            nn.init.normal_(module.weight, 1.0, 0.02)
            nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
