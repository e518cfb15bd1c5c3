"""JPEG, WebP and AVIF (Pillow; AVIF where Pillow was built with it) at a quality, and at the
lowest quality whose bits per pixel reach a target."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from mmtok.eval.codecs.matching import cheapest_reaching

# Pillow's encoder options per codec; the quality setting is searched.
IMAGE_CODECS = {
    "JPEG": {"format": "JPEG", "optimize": True},
    "WebP": {"format": "WEBP", "method": 6},
    "AVIF": {"format": "AVIF", "speed": 6},
}
QUALITIES = range(1, 96)


@dataclass
class ImageCodecResult:
    codec: str
    quality: int
    bpp: float
    decoded: np.ndarray  # uint8 (H, W, 3)


def available_image_codecs() -> list[str]:
    """The image codecs this Pillow can write (AVIF needs Pillow >= 11.3 or its plugin)."""
    from PIL import features

    return [name for name in IMAGE_CODECS if name != "AVIF" or features.check("avif")]


def image_roundtrip(codec: str, pixels: np.ndarray, quality: int) -> ImageCodecResult:
    """uint8 (H, W, 3) through `codec` at `quality`; bits per pixel from the encoded size."""
    if codec not in IMAGE_CODECS:
        raise ValueError(f"unknown image codec {codec!r}; known: {sorted(IMAGE_CODECS)}")
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, quality=quality, **IMAGE_CODECS[codec])
    bpp = buffer.tell() * 8 / (pixels.shape[0] * pixels.shape[1])
    buffer.seek(0)
    return ImageCodecResult(codec, quality, bpp, np.asarray(Image.open(buffer).convert("RGB")))


def image_at_bits(codec: str, pixels: np.ndarray, target_bpp: float, qualities: Sequence[int] = QUALITIES):
    """(matched, lowest): `codec` at the lowest quality whose bits per pixel reach `target_bpp`
    (None when even the highest stays below it), and at its lowest quality."""
    return cheapest_reaching(list(qualities), lambda q: image_roundtrip(codec, pixels, q), lambda r: r.bpp, target_bpp)
