"""Image reconstruction metrics: PSNR, SSIM, MS-SSIM and bits per pixel.

Written by hand in torch rather than taken from scikit-image or torchmetrics so
that they run batched on the model's device during training/eval without an
extra dependency; tests check them against scikit-image.

All image metrics take batch-first tensors (B, C, H, W) and return one value per
image, shape (B,). ``data_range`` is max - min of the pixel scale: 2.0 for
images in [-1, 1] (the toolkit's convention), 1.0 for [0, 1], 255 for uint8.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from mmtok.quantize.base import bits_per_position

__all__ = ["psnr", "ssim", "ms_ssim", "ms_ssim_supported", "bits_per_pixel"]

# Wang et al. 2004 constants and window (as in skimage with gaussian_weights=True).
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
    mse = (x - y).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(data_range**2 / mse)


def _gaussian_kernel(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    coords = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    kernel = torch.exp(-0.5 * (coords / sigma) ** 2)
    return kernel / kernel.sum()


def _blur(img: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter per channel, 'valid' output only.

    skimage filters with reflect padding and then crops (window - 1) / 2 pixels
    from each border before averaging; a valid convolution yields exactly that
    cropped region, so no padding is needed.
    """
    channels = img.shape[1]
    k = kernel.numel()
    img = F.conv2d(img, kernel.view(1, 1, 1, k).expand(channels, 1, 1, k), groups=channels)
    return F.conv2d(img, kernel.view(1, 1, k, 1).expand(channels, 1, k, 1), groups=channels)


def _ssim_and_cs(x: torch.Tensor, y: torch.Tensor, data_range: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean SSIM and mean contrast-structure term, each of shape (B, C)."""
    h, w = x.shape[-2:]
    if min(h, w) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {h}x{w}")
    kernel = _gaussian_kernel(SSIM_WINDOW, SSIM_SIGMA, x.dtype, x.device)
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2

    mu_x, mu_y = _blur(x, kernel), _blur(y, kernel)
    # Population (co)variances, as in Wang et al. (use_sample_covariance=False).
    var_x = _blur(x * x, kernel) - mu_x**2
    var_y = _blur(y * y, kernel) - mu_y**2
    cov_xy = _blur(x * y, kernel) - mu_x * mu_y

    cs_map = (2 * cov_xy + c2) / (var_x + var_y + c2)
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    ssim_map = luminance * cs_map
    return ssim_map.flatten(2).mean(dim=2), cs_map.flatten(2).mean(dim=2)


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """Structural similarity per image (11x11 Gaussian window, sigma 1.5), averaged over channels."""
    x, y = _check_pair(x, y)
    ssim_per_channel, _ = _ssim_and_cs(x, y, data_range)
    return ssim_per_channel.mean(dim=1)


def ms_ssim_supported(h: int, w: int, scales: int = len(MS_SSIM_WEIGHTS)) -> bool:
    """Whether an h x w image still fits the SSIM window after ``scales - 1`` halvings."""
    return min(h, w) // 2 ** (scales - 1) >= SSIM_WINDOW


def ms_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """Multi-scale SSIM per image over 5 scales with the standard weights.

    Needs images with the shorter side >= 176 (see ``ms_ssim_supported``).
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
        ssim_c, cs_c = _ssim_and_cs(x, y, data_range)
        last = scale == len(MS_SSIM_WEIGHTS) - 1
        # Clamp at 0: a negative term raised to a fractional weight would be NaN.
        factors.append(torch.relu(ssim_c if last else cs_c))
        if not last:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    per_channel = torch.stack(factors, dim=0).pow(weights.view(-1, 1, 1)).prod(dim=0)
    return per_channel.mean(dim=1)


def bits_per_pixel(
    token_shape: int | Sequence[int],
    num_codebooks: int,
    codebook_size: int | Sequence[int],
    image_hw: tuple[int, int],
) -> float:
    """Bits the token ids of one image carry per pixel.

    ``num_tokens * sum_k log2(codebook_size_k) / (H * W)``, where ``num_tokens`` is
    the product of ``token_shape`` (token positions, e.g. (16, 16)) and each of the
    ``num_codebooks`` codebooks contributes one id per position. ``codebook_size``
    is one size shared by all codebooks or a list with one size per codebook.
    """
    shape = (token_shape,) if isinstance(token_shape, int) else tuple(token_shape)
    num_tokens = math.prod(shape)
    if num_tokens <= 0:
        raise ValueError("token_shape must be positive")
    h, w = image_hw
    if h <= 0 or w <= 0:
        raise ValueError(f"image_hw must be positive, got {image_hw}")
    return num_tokens * bits_per_position(num_codebooks, codebook_size) / (h * w)
