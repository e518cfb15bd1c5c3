"""Rate-distortion sweep of a 1-D flexible-length tokenizer: quality per number of tokens k.

Each image is encoded once with all K tokens; its first k tokens are decoded for every k of the
sweep (a prefix is exactly what `encode(x, num_tokens=k)` returns). Bits per image are
k x sum over codebooks of log2(codebook size), i.e. k x num_codebooks x log2(size) when the
codebooks are equal.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from mmtok.eval.image import psnr, ssim
from mmtok.health import CodebookMonitor
from mmtok.models.image1d import powers_of_two_up_to
from mmtok.quantize.base import bits_per_position


@torch.no_grad()
def position_usage(tokenizer, x: torch.Tensor) -> list[dict]:
    """Codebook usage of every latent position over the images x (B, C, S, S): one entry per
    position with CodebookMonitor's stats per codebook."""
    monitors = [
        CodebookMonitor(tokenizer.codebook_sizes, tokenizer.num_codebooks) for _ in range(tokenizer.num_latent_tokens)
    ]
    for monitor, ids in zip(monitors, tokenizer.ids_by_position(x)):
        monitor.update(ids)
    return [{"position": j, "codebooks": monitor.compute()} for j, monitor in enumerate(monitors)]


@torch.no_grad()
def sweep_num_tokens(
    tokenizer, images: list[tuple[str, np.ndarray]], ks: list[int] | None = None, batch_size: int = 16
) -> dict:
    """PSNR / SSIM averaged over `images` (name, uint8 HxWx3) for each k in `ks` (default 1, 2, 4,
    ..., K), the bits per image at each k, and every latent position's codebook usage."""
    if not images:
        raise ValueError("the sweep needs at least one image")
    tokenizer.eval()
    K = tokenizer.num_latent_tokens
    ks = powers_of_two_up_to(K) if ks is None else sorted(set(int(k) for k in ks))
    if ks[0] < 1 or ks[-1] > K:
        raise ValueError(f"every k must be in [1, {K}], got {ks}")
    size = tokenizer.config.image_size
    device = next(tokenizer.parameters()).device
    x = tokenizer.input_spec().prepare([image for _, image in images]).tensor.to(device)  # the one input path

    per_k = {k: {"psnr": [], "ssim": []} for k in ks}
    for batch in x.split(batch_size):
        ids = tokenizer.encode(batch)
        for k in ks:
            recon = tokenizer.decode(ids[:, :k]).clamp(-1, 1)
            per_k[k]["psnr"] += psnr(recon, batch).tolist()
            per_k[k]["ssim"] += ssim(recon, batch).tolist()

    bits = bits_per_position(tokenizer.num_codebooks, tokenizer.codebook_sizes)
    rows = [
        {
            "k": k,
            "bits": k * bits,
            "bpp": k * bits / size**2,
            "psnr": float(np.mean(per_k[k]["psnr"])),
            "ssim": float(np.mean(per_k[k]["ssim"])),
        }
        for k in ks
    ]
    return {
        "images": [name for name, _ in images],
        "image_size": size,
        "num_latent_tokens": K,
        "num_codebooks": tokenizer.num_codebooks,
        "codebook_sizes": tokenizer.codebook_sizes,
        "bits_per_token": bits,
        "rows": rows,
        "positions": position_usage(tokenizer, x),
    }


def save_sweep(result: dict, json_path: str | Path, png_path: str | Path, reference: dict | None = None) -> None:
    """The sweep as JSON and as a PSNR/SSIM-vs-bits plot. `reference` ({"label", "bits", "psnr",
    "ssim"}), e.g. a 2-D tokenizer, is drawn as a single point on both panels."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state, renders with Agg

    Path(json_path).parent.mkdir(parents=True, exist_ok=True)
    Path(json_path).write_text(json.dumps({**result, "reference": reference}, indent=2) + "\n")

    rows = result["rows"]
    bits = [row["bits"] for row in rows]
    figure = Figure(figsize=(10, 4), layout="constrained")
    for axis, metric, label in zip(figure.subplots(1, 2), ("psnr", "ssim"), ("PSNR (dB)", "SSIM")):
        axis.plot(
            bits,
            [row[metric] for row in rows],
            marker="o",
            label=f"1-D tokenizer, k = 1..{result['num_latent_tokens']}",
        )
        for row in rows:
            axis.annotate(
                f"k={row['k']}", (row["bits"], row[metric]), textcoords="offset points", xytext=(4, -10), fontsize=8
            )
        if reference is not None:
            axis.plot(
                [reference["bits"]],
                [reference[metric]],
                marker="s",
                linestyle="none",
                color="C3",
                label=reference["label"],
            )
        axis.set_xscale("log", base=2)
        axis.set_xlabel("bits per image")
        axis.set_ylabel(label)
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(f"rate-distortion on {len(result['images'])} images, {result['image_size']}x{result['image_size']}")
    Path(png_path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png_path, dpi=120)
