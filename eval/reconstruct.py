"""Reconstruct held-out images with a tokenizer and measure what the tokens keep."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from mmtok.eval.image import bits_per_pixel, channel_spread, colourfulness, ms_ssim, ms_ssim_supported, psnr, ssim
from mmtok.health import CodebookMonitor


@torch.no_grad()
def evaluate_image_tokenizer(tokenizer, images: list[tuple[str, np.ndarray]], *, size: int = 256) -> dict:
    """Per-image PSNR / SSIM / MS-SSIM (where large enough) / bits per pixel / colourfulness of the
    input and of the reconstruction, their means, and the codebook health over all the images' tokens."""
    tokenizer.eval()
    device = next(tokenizer.parameters()).device
    # The tokenizer's own input path, with centred crops of at most `size` px per side.
    spec = dataclasses.replace(tokenizer.input_spec(), crop_size=size)
    monitor = CodebookMonitor(tokenizer.codebook_sizes, tokenizer.num_codebooks)
    rows = []
    for name, image in images:
        x = spec.prepare(image).tensor.to(device)
        ids = tokenizer.encode(x)
        monitor.update(ids)
        recon = tokenizer.decode(ids).clamp(-1, 1)
        h, w = x.shape[-2:]
        row = {
            "name": name,
            "height": h,
            "width": w,
            "psnr": float(psnr(recon, x)[0]),
            "ssim": float(ssim(recon, x)[0]),
            "bpp": bits_per_pixel(tuple(ids.shape[1:-1]), tokenizer.num_codebooks, tokenizer.codebook_sizes, (h, w)),
            "colour_in": float(colourfulness(x)[0]),
            "colour_out": float(colourfulness(recon)[0]),
            "spread_out": float(channel_spread(recon)[0]),
        }
        if ms_ssim_supported(h, w):
            row["ms_ssim"] = float(ms_ssim(recon, x)[0])
        rows.append(row)
    summary = {
        key: float(np.mean([r[key] for r in rows]))
        for key in ("psnr", "ssim", "bpp", "colour_in", "colour_out", "spread_out")
    }
    # How much colour the tokens keep: a gray reconstruction keeps 0, whatever its PSNR.
    summary["colour_kept"] = summary["colour_out"] / max(summary["colour_in"], 1e-9)
    return {"images": rows, "mean": summary, "codebooks": monitor.compute()}
