"""Images in and out of tokenizers: a path, PIL image, uint8 array or tensor -> (B, 3, H, W) in [-1, 1]."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def load_image(source: str | Path | bytes) -> np.ndarray:
    """uint8 (H, W, 3) from a path or encoded bytes; anything that is not an image raises ValueError."""
    name = "bytes" if isinstance(source, (bytes, bytearray)) else source
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise ValueError(f"cannot read an image from {name}: {error}") from None


def center_crop_to_multiple(image: np.ndarray, size: int | None, multiple: int) -> np.ndarray:
    """A centred crop of at most `size` pixels per side (None: no limit), rounded down to a multiple."""
    h, w = image.shape[:2]
    ch = min(size or h, h) // multiple * multiple
    cw = min(size or w, w) // multiple * multiple
    if ch == 0 or cw == 0:
        raise ValueError(f"image {h}x{w} is smaller than {multiple} pixels per side")
    top, left = (h - ch) // 2, (w - cw) // 2
    return image[top : top + ch, left : left + cw]


def images_to_tensor(media, *, multiple: int = 1, size: int | None = None) -> torch.Tensor:
    """A path or encoded bytes (or a list of them), a PIL image, uint8 (H, W, 3) / (B, H, W, 3) arrays, or a
    float tensor (B, 3, H, W) in [-1, 1] (returned as is) -> float (B, 3, H, W) in [-1, 1]. Arrays are centre-cropped
    to a multiple of `multiple` (at most `size` per side)."""
    if torch.is_tensor(media):
        if not media.is_floating_point() or media.ndim != 4:
            raise ValueError(
                f"image tensors must be float (B, 3, H, W) in [-1, 1], got {media.dtype} {tuple(media.shape)}"
            )
        return media
    if isinstance(media, (str, Path, bytes, bytearray)):
        media = [media]
    if isinstance(media, Image.Image):
        media = np.asarray(media.convert("RGB"))
    if isinstance(media, (list, tuple)):
        arrays = [load_image(m) if isinstance(m, (str, Path, bytes, bytearray)) else np.asarray(m) for m in media]
        arrays = [center_crop_to_multiple(_rgb(a), size, multiple) for a in arrays]
        if len({a.shape for a in arrays}) != 1:
            raise ValueError(f"images in one batch must share a size after cropping, got {[a.shape for a in arrays]}")
        media = np.stack(arrays)
    array = np.asarray(media)
    if array.dtype != np.uint8:
        raise ValueError(f"image arrays must be uint8, got {array.dtype}")
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4:
        raise ValueError(f"expected (H, W, 3) or (B, H, W, 3) pixels, got shape {array.shape}")
    array = np.stack([center_crop_to_multiple(_rgb(a), size, multiple) for a in array])
    return torch.from_numpy(array).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def tensor_to_images(x: torch.Tensor) -> np.ndarray:
    """float (B, 3, H, W) in [-1, 1] -> uint8 (B, H, W, 3)."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def _rgb(array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise ValueError(f"expected (H, W, 3) pixels, got shape {array.shape}")
    return array[..., :3]
