"""Video reconstruction metrics (`mmtok eval`'s video suite scores with them).

Clips are batch-first float tensors (B, C, T, H, W) in [-1, 1] (``data_range`` 2.0) unless said.
PSNR and SSIM are the image metrics of ``mmtok.eval.metrics.image`` on every frame; a clip's score is the
mean over its frames. The temporal-consistency error is the RMS difference between the frame-to-
frame changes of the reconstruction and of the original, in 8-bit levels: flicker and motion the
original does not have raise it, while a static error that is the same in every frame does not.
"""

from __future__ import annotations

import torch

from mmtok.eval.metrics.image import psnr, ssim
from mmtok.models.video import as_frames

__all__ = ["frame_psnr", "frame_ssim", "temporal_error"]


def _frames(x: torch.Tensor) -> torch.Tensor:
    if x.ndim != 5:
        raise ValueError(f"expected clips (B, C, T, H, W), got shape {tuple(x.shape)}")
    return as_frames(x)


def frame_psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """PSNR in dB of every frame, shape (B, T)."""
    return psnr(_frames(x), _frames(y), data_range).view(x.shape[0], x.shape[2])


def frame_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """SSIM of every frame, shape (B, T)."""
    return ssim(_frames(x), _frames(y), data_range).view(x.shape[0], x.shape[2])


def temporal_error(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """RMS of (y[t+1] - y[t]) - (x[t+1] - x[t]) per clip in 8-bit levels, shape (B,); NaN for one frame."""
    if x.shape != y.shape:
        raise ValueError(f"clip shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    x, y = x.double(), y.double()
    change = (y.diff(dim=2) - x.diff(dim=2)) * (255.0 / data_range)
    if change.shape[2] == 0:
        return torch.full((x.shape[0],), float("nan"), dtype=torch.float64)
    return change.pow(2).mean(dim=(1, 2, 3, 4)).sqrt()
