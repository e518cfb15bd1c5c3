"""Image reconstruction metrics: PSNR, SSIM, MS-SSIM and bits per pixel.

PSNR and SSIM come from ``torchmetrics.functional.image``, so they run batched on the model's
device. Two choices keep the values those of scikit-image and of Wang et al.'s reference code,
which tests check against scikit-image:

- SSIM averages the SSIM map over the pixels whose 11x11 window lies inside the image, as
  scikit-image (``gaussian_weights=True``) and Wang et al.'s MATLAB code do. torchmetrics
  averages the whole reflect-padded map instead, which moves SSIM by up to 0.03 on 32 px crops
  (0.007 at 192 px); we take its full map and crop the border ourselves.
- MS-SSIM is built from those SSIM terms per channel (as ``tf.image.ssim_multiscale`` does)
  rather than taken from torchmetrics' ``multiscale_structural_similarity_index_measure``,
  whose last-scale SSIM term keeps the reflect-padded border (an 11x11 map at 176 px where the
  valid window leaves one value) and which averages channels before the per-scale powers: up
  to 0.02 apart at 176 px, about 0.001 at 192 to 256 px.

All image metrics take batch-first tensors (B, C, H, W) and return one value per image, shape
(B,). ``data_range`` is max - min of the pixel scale: 2.0 for images in [-1, 1] (the toolkit's
convention), 1.0 for [0, 1], 255 for uint8.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

__all__ = [
    "psnr",
    "ssim",
    "ms_ssim",
    "ms_ssim_supported",
    "colourfulness",
    "colour_cast",
    "channel_spread",
    "grayscale",
]

# Wang et al. 2004 constants and window (as in skimage with gaussian_weights=True). torchmetrics
# sizes its Gaussian window from sigma alone, 2 * int(3.5 * sigma + 0.5) + 1 = 11 taps, as skimage does.
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03

# Wang, Simoncelli & Bovik 2003, one weight per scale (finest first).
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if x.shape != y.shape:
        raise ValueError(f"image shapes differ: {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.ndim != 4:
        raise ValueError(f"expected batch-first images (B, C, H, W), got shape {tuple(x.shape)}")
    # Half precision loses too much in squared differences; float64 stays float64.
    dtype = torch.float64 if torch.float64 in (x.dtype, y.dtype) else torch.float32
    return x.to(dtype), y.to(dtype)


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image; ``inf`` for identical images."""
    x, y = _check_pair(x, y)
    return peak_signal_noise_ratio(x, y, data_range=data_range, reduction="none", dim=(1, 2, 3))


_SSIM_OPTIONS = dict(gaussian_kernel=True, sigma=SSIM_SIGMA, k1=SSIM_K1, k2=SSIM_K2, reduction="none")


def _per_channel(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, H, W) -> (B * C, 1, H, W): torchmetrics averages over channels, we want each one."""
    h, w = x.shape[-2:]
    if min(h, w) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {h}x{w}")
    return x.reshape(-1, 1, h, w), y.reshape(-1, 1, h, w)


def _ssim_per_channel(x: torch.Tensor, y: torch.Tensor, data_range: float) -> torch.Tensor:
    """Mean SSIM over the window positions inside the image, shape (B, C)."""
    _, ssim_map = structural_similarity_index_measure(
        *_per_channel(x, y), data_range=data_range, return_full_image=True, **_SSIM_OPTIONS
    )
    # Drop the border whose windows reach into torchmetrics' reflect padding, as skimage does.
    pad = (SSIM_WINDOW - 1) // 2
    return ssim_map[..., pad:-pad, pad:-pad].mean(dim=(1, 2, 3)).view(x.shape[:2])


def _cs_per_channel(x: torch.Tensor, y: torch.Tensor, data_range: float) -> torch.Tensor:
    """Mean contrast-structure term over the window positions inside the image, shape (B, C)."""
    # torchmetrics already drops the padded border from this term.
    _, cs = structural_similarity_index_measure(
        *_per_channel(x, y), data_range=data_range, return_contrast_sensitivity=True, **_SSIM_OPTIONS
    )
    return cs.view(x.shape[:2])


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """Structural similarity per image (11x11 Gaussian window, sigma 1.5), averaged over channels."""
    x, y = _check_pair(x, y)
    return _ssim_per_channel(x, y, data_range).mean(dim=1)


def ms_ssim_supported(h: int, w: int, scales: int = len(MS_SSIM_WEIGHTS)) -> bool:
    """Whether an h x w image still fits the SSIM window after ``scales - 1`` halvings."""
    return min(h, w) // 2 ** (scales - 1) >= SSIM_WINDOW


def ms_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """Multi-scale SSIM per image over 5 scales with the standard weights.

    Per channel: the contrast-structure terms of scales 1-4 and the SSIM of scale 5 (each clamped
    at 0), raised to their weights and multiplied; then averaged over channels. Needs images with
    the shorter side >= 176 (see ``ms_ssim_supported``).
    """
    x, y = _check_pair(x, y)
    h, w = x.shape[-2:]
    if not ms_ssim_supported(h, w):
        raise ValueError(
            f"MS-SSIM with {len(MS_SSIM_WEIGHTS)} scales needs the shorter image side to be at least "
            f"{SSIM_WINDOW * 2 ** (len(MS_SSIM_WEIGHTS) - 1)} pixels, got {h}x{w}; use ssim() instead"
        )
    weights = torch.tensor(MS_SSIM_WEIGHTS, dtype=x.dtype, device=x.device)
    factors = []
    for scale in range(len(MS_SSIM_WEIGHTS)):
        last = scale == len(MS_SSIM_WEIGHTS) - 1
        term = _ssim_per_channel(x, y, data_range) if last else _cs_per_channel(x, y, data_range)
        # Clamp at 0: a negative term raised to a fractional weight would be NaN.
        factors.append(torch.relu(term))
        if not last:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    per_channel = torch.stack(factors, dim=0).pow(weights.view(-1, 1, 1)).prod(dim=0)
    return per_channel.mean(dim=1)


def colourfulness(x: torch.Tensor) -> torch.Tensor:
    """How far pixels are from gray, per image: the mean absolute deviation of each channel from
    the pixel's own gray level (the mean of its channels), on the 0-255 scale; 0 for a gray image.
    `x`: (B, 3, H, W) in [-1, 1]. A reconstruction that keeps the colour keeps this number."""
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected RGB images (B, 3, H, W), got {tuple(x.shape)}")
    pixels = (x.double().clamp(-1, 1) + 1) * 127.5
    return (pixels - pixels.mean(dim=1, keepdim=True)).abs().mean(dim=(1, 2, 3))


def colour_cast(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """How far the reconstruction `x`'s mean chroma (each channel's distance from the pixel's gray
    level, averaged over all its pixels) moved from the original `y`'s, per item, on the 0-255
    scale: a cast tints everything one way and shows here, while noise averages out. (B, 3, ...)
    in [-1, 1]: images or clips."""
    if x.shape != y.shape or x.ndim < 3 or x.shape[1] != 3:
        raise ValueError(f"expected two RGB batches (B, 3, ...) of one shape, got {tuple(x.shape)}, {tuple(y.shape)}")

    def mean_chroma(v: torch.Tensor) -> torch.Tensor:
        pixels = (v.double().clamp(-1, 1) + 1) * 127.5
        return (pixels - pixels.mean(dim=1, keepdim=True)).flatten(2).mean(dim=2)  # (B, 3)

    return (mean_chroma(x) - mean_chroma(y)).norm(dim=1)


def grayscale(pixels: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) -> the same photo in gray (ITU-R 601 luma, as Pillow's "L") on all three
    channels: what a tokenizer should give back without a colour cast."""
    luma = np.asarray(Image.fromarray(pixels).convert("L"))
    return np.repeat(luma[..., None], 3, axis=-1)


def channel_spread(x: torch.Tensor) -> torch.Tensor:
    """The mean over pixels of max - min across the three channels, per image, on the 0-255 scale:
    0 for a gray image, and the stricter of the two measures of a colour cast on one (about three
    times `colourfulness` for a cast towards one hue)."""
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected RGB images (B, 3, H, W), got {tuple(x.shape)}")
    pixels = (x.double().clamp(-1, 1) + 1) * 127.5
    return (pixels.amax(dim=1) - pixels.amin(dim=1)).mean(dim=(1, 2))
