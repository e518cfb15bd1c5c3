"""PatchGAN discriminator (Isola et al. 2017, as used by VQGAN) for adversarial tokenizer training,
on images or, with dims=3, on video clips."""

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


def _norm_layer(kind: str, channels: int, dims: int) -> nn.Module:
    if kind == "group":
        # Up to 32 groups as usual, but always a divisor of the channel count.
        return nn.GroupNorm(math.gcd(32, channels), channels)
    if kind == "batch":
        return nn.BatchNorm2d(channels) if dims == 2 else nn.BatchNorm3d(channels)
    return nn.Identity()


def _conv(dims: int, in_channels: int, out_channels: int, stride: int, bias: bool = True) -> nn.Module:
    """A 4x4 convolution; on clips (dims=3) 3 frames deep and stride 1 in time, which keeps short clips' frames."""
    if dims == 2:
        return nn.Conv2d(in_channels, out_channels, kernel_size=4, stride=stride, padding=1, bias=bias)
    return nn.Conv3d(in_channels, out_channels, (3, 4, 4), stride=(1, stride, stride), padding=1, bias=bias)


class PatchGANDiscriminator(nn.Module):
    """Fully convolutional discriminator giving one real/fake logit per image patch.

    Layout (pix2pix "n_layers" PatchGAN): a 4x4 stride-2 conv with LeakyReLU(0.2);
    ``num_layers - 1`` further 4x4 stride-2 conv + norm + LeakyReLU blocks that
    double the channels (capped at 8x ``base_channels``); one 4x4 stride-1 conv
    block; and a final 4x4 stride-1 conv to one channel. Returns logits of shape
    (B, 1, h, w); with num_layers=3, a 64x64 input gives 6x6 and 128x128 gives 14x14.
    With dims=3 it takes clips (B, C, T, H, W) and every kernel is also 3 frames deep (stride 1 in
    time): logits (B, 1, T, h, w), each judging a space-time patch.
    """

    def __init__(
        self,
        in_channels: int = 3,
        base_channels: int = 64,
        num_layers: int = 3,
        norm: str = "group",
        dims: int = 2,
    ) -> None:
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"dims must be 2 (images) or 3 (video clips), got {dims}")
        if norm not in NORM_KINDS:
            raise ValueError(f"unknown norm {norm!r}; expected one of {NORM_KINDS}")
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        # A conv followed by a normalisation has its bias cancelled out.
        use_bias = norm == "none"

        layers: list[nn.Module] = [
            _conv(dims, in_channels, base_channels, stride=2),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        channels = base_channels
        for n in range(1, num_layers + 1):
            out_channels = base_channels * min(2**n, 8)
            stride = 2 if n < num_layers else 1  # the last block keeps the resolution
            layers += [
                _conv(dims, channels, out_channels, stride, bias=use_bias),
                _norm_layer(norm, out_channels, dims),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            channels = out_channels
        layers.append(_conv(dims, channels, 1, stride=1))
        self.layers = nn.Sequential(*layers)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        # DCGAN/pix2pix initialisation: small normal weights keep early logits near zero.
        if isinstance(module, (nn.Conv2d, nn.Conv3d)):
            nn.init.normal_(module.weight, 0.0, 0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, (nn.GroupNorm, nn.BatchNorm2d, nn.BatchNorm3d)):
            nn.init.normal_(module.weight, 1.0, 0.02)
            nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
