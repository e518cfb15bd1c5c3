"""Causal convolutions along time that stream: the one mechanism the audio codec and the video
tokenizer share.

Time is axis 2 of the tensors they take: (B, C, T) for audio, (B, C, T, H, W) for video. A
`StreamableConv` pads itself, left only when causal, so the framing is fixed by the layer:

- `first_frame_alone=False` (audio): T inputs give floor(T / stride) outputs; output j sees inputs
  < (j + 1) * stride.
- `first_frame_alone=True` (video): T inputs give 1 + (T - 1) // stride outputs; output j sees
  inputs <= j * stride, so the first output covers the first input alone (a video's first frame
  is encoded as an image) and a clip of 1 + k * stride frames gives 1 + k outputs.

Inside `streaming(module)` each such layer keeps the input tail its next output needs, so feeding
a signal chunk by chunk gives exactly the outputs of the whole signal at once, with memory bounded
by the chunk. `rechunk` cuts a stream of pieces of any lengths into the lengths a model's
streaming rule wants.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn


def pad_time(x: torch.Tensor, left: int, right: int = 0) -> torch.Tensor:
    """Zero padding on axis 2 (time) of a (B, C, T, ...) tensor."""
    return F.pad(x, [0, 0] * (x.ndim - 3) + [left, right])


class Streamable(nn.Module):
    """A layer with per-stream state; `streaming(module)` switches every one inside a module."""

    _streaming = False

    def start_streaming(self) -> None:
        self._streaming = True

    def stop_streaming(self) -> None:
        self._streaming = False


class StreamableConv(Streamable):
    """A convolution along time (Conv1d for (B, C, T); for (B, C, T, H, W) when `spatial_dims=2`, a
    (k, 1, 1) kernel) that does its own padding and streaming (module docstring). The inner
    convolution is `self.conv`."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        dilation: int = 1,
        causal: bool = True,
        spatial_dims: int = 0,
        first_frame_alone: bool = False,
        groups: int = 1,
    ):
        super().__init__()
        if spatial_dims == 0:
            self.conv = nn.Conv1d(
                in_channels, out_channels, kernel_size, stride=stride, dilation=dilation, groups=groups
            )
        elif spatial_dims == 2:
            # A (k, 1) Conv2d over (time, pixels): the (k, 1, 1) Conv3d it equals has no fast CPU kernel.
            self.conv = nn.Conv2d(
                in_channels, out_channels, (kernel_size, 1), stride=(stride, 1), dilation=(dilation, 1), groups=groups
            )
        else:
            raise ValueError(f"spatial_dims must be 0 (audio) or 2 (video), got {spatial_dims}")
        if first_frame_alone and not causal:
            raise ValueError("first_frame_alone framing is causal by definition")
        self.stride, self.causal = stride, causal
        self.span = (kernel_size - 1) * dilation + 1
        self.padding = self.span - (1 if first_frame_alone else stride)
        self._buffer: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._streaming:
            return self._forward_chunk(x)
        left = self.padding if self.causal else self.padding // 2
        return self._conv(pad_time(x, left, self.padding - left))

    def _conv(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3:
            return self.conv(x)
        return self.conv(x.flatten(3)).unflatten(3, x.shape[3:])

    def _forward_chunk(self, x: torch.Tensor) -> torch.Tensor:
        if self._buffer is None:  # the causal left padding, once
            self._buffer = pad_time(x.narrow(2, 0, 0), self.padding)
        x = torch.cat([self._buffer, x], dim=2)
        length = x.shape[2]
        outputs = (length - self.span) // self.stride + 1 if length >= self.span else 0
        self._buffer = x.narrow(2, outputs * self.stride, length - outputs * self.stride)
        if outputs == 0:
            shape = list(x.shape)
            shape[1], shape[2] = self.conv.out_channels, 0
            return x.new_zeros(shape)
        return self._conv(x.narrow(2, 0, (outputs - 1) * self.stride + self.span))

    def start_streaming(self) -> None:
        if not self.causal:
            raise RuntimeError("only a causal model can stream; use encode_long for a non-causal one")
        super().start_streaming()
        self._buffer = None

    def stop_streaming(self) -> None:
        super().stop_streaming()
        self._buffer = None


@contextmanager
def streaming(module: nn.Module):
    """Within this context every Streamable layer of `module` carries its state from call to call."""
    layers = [m for m in module.modules() if isinstance(m, Streamable)]
    started = []
    try:
        for layer in layers:
            layer.start_streaming()
            started.append(layer)
        yield module
    finally:
        for layer in started:
            layer.stop_streaming()


def receptive_field(module: nn.Module) -> int:
    """Input samples that can influence one output of `module`'s StreamableConvs, applied in the
    order they were registered (a plain stack: each adds its span - 1 at the stride reached so far)."""
    field, jump = 1, 1
    for layer in module.modules():
        if isinstance(layer, StreamableConv):
            field += (layer.span - 1) * jump
            jump *= layer.stride
    return field


def is_streaming(module: nn.Module) -> bool:
    return any(m._streaming for m in module.modules() if isinstance(m, Streamable))


def rechunk(pieces: Iterable[torch.Tensor], sizes: Iterable[int], dim: int = 2) -> Iterator[torch.Tensor]:
    """Consecutive pieces along `dim` -> the same signal cut into the lengths `sizes` gives in turn
    (the last piece is what is left, possibly shorter). Each input piece is copied at most once,
    to join it with the tail of the one before; memory is a piece plus one output length."""
    lengths = iter(sizes)
    size = next(lengths)
    held: list[torch.Tensor] = []
    length = 0
    for piece in pieces:
        held.append(piece)
        length += piece.shape[dim]
        while length >= size:
            joined = held[0] if len(held) == 1 else torch.cat(held, dim=dim)
            yield joined.narrow(dim, 0, size)
            held, length = [joined.narrow(dim, size, length - size)], length - size
            size = next(lengths)
    if length:
        yield held[0] if len(held) == 1 else torch.cat(held, dim=dim)
