"""Held-out colour photos through an image tokenizer, the peer's VQGAN and JPEG/WebP at its bits.

Every method sees the same pixels: the tokenizer's own input path (a centred crop of at most
SIZE px whose sides are multiples of its downsampling) prepares each photo once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from mmtok.data.image_io import decode_image, pixels_to_tensor, tensor_to_images
from mmtok.data.sample_images import DEFAULT_HELD_OUT, sample_images
from mmtok.eval.codecs import image_at_bits
from mmtok.eval.image import bits_per_pixel, colourfulness, psnr, ssim
from mmtok.health import CodebookMonitor

SIZE = 256
CODECS = ("JPEG", "WebP")


def heldout_photos(folder: Path | None) -> list[tuple[str, np.ndarray]]:
    """The colour photos the quickstart's split keeps out of training (chelsea, rocket, china), plus
    every PNG/JPEG in `folder` (the held-out photos scripts/fetch_data.sh writes to
    data_cache/images/heldout) when there is one."""
    photos = sample_images(held_out=DEFAULT_HELD_OUT)[1]
    if folder is not None and folder.is_dir():
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        photos += [(p.stem, decode_image(p)) for p in files]
    return photos


@dataclasses.dataclass
class Method:
    """Something that turns a prepared batch (1, 3, H, W) into its reconstruction, at some bits."""

    label: str
    reconstruct: Callable[[torch.Tensor], torch.Tensor]
    bits_per_pixel: Callable[[torch.Tensor], float]


def tokenizer_method(label: str, tokenizer, monitor: CodebookMonitor | None = None) -> Method:
    def reconstruct(x):
        ids = tokenizer.encode(x)
        if monitor is not None:
            monitor.update(ids)
        return tokenizer.decode(ids)

    def bpp(x):
        shape = tokenizer.token_shape_for(tuple(x.shape))
        return bits_per_pixel(shape, tokenizer.num_codebooks, tokenizer.codebook_sizes, tuple(x.shape[-2:]))

    return Method(label, reconstruct, bpp)


def _scores(x: torch.Tensor, recon: torch.Tensor, bpp: float) -> dict:
    recon = recon.clamp(-1, 1)
    return {
        "bpp": bpp,
        "psnr": float(psnr(recon, x)[0]),
        "ssim": float(ssim(recon, x)[0]),
        "colour_in": float(colourfulness(x)[0]),
        "colour_out": float(colourfulness(recon)[0]),
    }


@torch.no_grad()
def compare(methods: list[Method], photos, spec, codecs_at: str | None) -> tuple[dict, list[list[np.ndarray]]]:
    """Per method: one row per photo and their means (colour kept = mean colourfulness out / in).
    JPEG and WebP come in at the lowest quality whose bits reach those of the method labelled
    `codecs_at`. Also returns, per photo, the original and every reconstruction as uint8 pixels."""
    spec = dataclasses.replace(spec, crop_size=SIZE)
    rows: dict[str, list[dict]] = {m.label: [] for m in methods}
    rows.update({codec: [] for codec in CODECS} if codecs_at else {})
    pictures = []
    for name, photo in photos:
        x = spec.prepare(photo).tensor
        original = tensor_to_images(x)[0]
        line = [original]
        for method in methods:
            recon = method.reconstruct(x)
            rows[method.label].append({"name": name, **_scores(x, recon, method.bits_per_pixel(x))})
            line.append(tensor_to_images(recon.clamp(-1, 1))[0])
        for codec in CODECS if codecs_at else ():
            target = rows[codecs_at][-1]["bpp"]
            lowest, matched = image_at_bits(codec, np.ascontiguousarray(original), target)
            result = matched or lowest
            decoded = pixels_to_tensor(result.decoded)
            rows[codec].append({"name": name, "quality": result.quality, **_scores(x, decoded, result.bpp)})
            line.append(result.decoded)
        pictures.append(line)
    return {label: {"images": r, "mean": _means(r)} for label, r in rows.items()}, pictures


def _means(rows: list[dict]) -> dict:
    keys = [k for k in rows[0] if k not in ("name", "quality")]
    mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    mean["colour_kept"] = mean["colour_out"] / max(mean["colour_in"], 1e-9)
    return mean


def save_grid(pictures: list[list[np.ndarray]], labels: list[str], path: Path, cell: int = 192) -> None:
    """One row per photo: original | each reconstruction, resized to `cell` px high, labelled on top."""
    gap, header = 4, 18
    widths = [round(p.shape[1] * cell / p.shape[0]) for p in (line[0] for line in pictures)]
    columns = len(pictures[0])
    width = max(widths) * columns + gap * (columns - 1)
    sheet = Image.new("RGB", (width, header + len(pictures) * (cell + gap)), "white")
    draw = ImageDraw.Draw(sheet)
    column_width = max(widths) + gap
    for c, label in enumerate(labels):
        draw.text((c * column_width + 2, 2), label, fill="black")
    for r, line in enumerate(pictures):
        for c, picture in enumerate(line):
            tile = Image.fromarray(picture).resize((widths[r], cell), Image.Resampling.LANCZOS)
            sheet.paste(tile, (c * column_width, header + r * (cell + gap)))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
