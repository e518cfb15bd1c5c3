"""Reconstruct held-out images with a tokenizer and measure what the tokens keep."""

from __future__ import annotations

import numpy as np
import torch

from mmtok.eval.image import bits_per_pixel, ms_ssim, ms_ssim_supported, psnr, ssim
from mmtok.health import CodebookMonitor


def center_crop_to_multiple(image: np.ndarray, size: int, multiple: int) -> np.ndarray:
    """A centered crop of at most `size` pixels per side, rounded down to a multiple of `multiple`."""
    h, w = image.shape[:2]
    ch = min(size, h) // multiple * multiple
    cw = min(size, w) // multiple * multiple
    if ch == 0 or cw == 0:
        raise ValueError(f"image {h}x{w} is smaller than the tokenizer's downsampling factor {multiple}")
    top, left = (h - ch) // 2, (w - cw) // 2
    return image[top : top + ch, left : left + cw]


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float (1, 3, H, W) in [-1, 1]."""
    return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return ((x[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()


@torch.no_grad()
def evaluate_image_tokenizer(tokenizer, images: list[tuple[str, np.ndarray]], *, size: int = 256) -> dict:
    """Per-image PSNR / SSIM / MS-SSIM (where large enough) / bits per pixel, their means, and the
    codebook health over all the images' tokens."""
    tokenizer.eval()
    device = next(tokenizer.parameters()).device
    factor = tokenizer.config.downsampling_factor
    monitor = CodebookMonitor(tokenizer.codebook_sizes, tokenizer.num_codebooks)
    rows = []
    for name, image in images:
        x = to_tensor(center_crop_to_multiple(image, size, factor)).to(device)
        ids = tokenizer.encode(x)
        monitor.update(ids)
        recon = tokenizer.decode(ids).clamp(-1, 1)
        h, w = x.shape[-2:]
        row = {
            "name": name, "height": h, "width": w,
            "psnr": float(psnr(recon, x)[0]), "ssim": float(ssim(recon, x)[0]),
            "bpp": bits_per_pixel(tuple(ids.shape[1:-1]), tokenizer.num_codebooks, tokenizer.codebook_sizes, (h, w)),
        }
        if ms_ssim_supported(h, w):
            row["ms_ssim"] = float(ms_ssim(recon, x)[0])
        rows.append(row)
    summary = {key: float(np.mean([r[key] for r in rows])) for key in ("psnr", "ssim", "bpp")}
    return {"images": rows, "mean": summary, "codebooks": monitor.compute()}
