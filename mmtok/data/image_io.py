"""The one input path for images: decode, normalise, crop, and the spec that records it all.

Training (`ImageDataset`), `FrozenTokenizer.encode`, `mmtok tokenize` and eval all go through
`decode_image` and `ImageInputSpec.prepare_pixels`, so a tokenizer never sees at tokenize time
pixels prepared differently from the ones it was trained on:

- every file becomes 8-bit RGB: 16-bit images are rescaled (not clipped), transparency is
  composited on white, palettes, CMYK and grayscale are converted, EXIF rotation is applied;
- an image whose shorter side is below `min_side` is upscaled (bicubic) to it (or, for models
  trained at one resolution, the shorter side is resized to `resize_to`, up or down);
- then a window is cut: training takes random crops, encoding a centred crop of at most
  `crop_size` per side whose sides are multiples of `multiple_of`;
- pixels map to [-1, 1].

An image larger than `max_pixels` once resized (an extreme aspect ratio upscaled to `min_side`, a
huge scan) is refused with a ValueError before the resized image is allocated, and so is a file
PIL takes for a decompression bomb.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from PIL import Image, ImageOps

from mmtok.data.spec import InputSpec, Prepared, stack_prepared

Window = tuple[int, int, int, int]  # top, left, height, width
ENCODED = (str, Path, bytes, bytearray, memoryview)
SIXTEEN_BIT_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")
# Pixels per image (or video frame) after resizing, unless a model config says otherwise: 2**25 =
# 33.5 Mpx takes an 8K UHD frame (7680x4320 = 33.2 Mpx) and photos from most cameras, while the
# prepared float tensor of one such image stays at 384 MiB; beyond that a tokenizer's activations
# run to tens of GiB, which an extreme aspect ratio upscaled to the training size would otherwise
# reach silently.
DEFAULT_MAX_PIXELS = 2**25


def _to_rgb(image: Image.Image) -> np.ndarray:
    """Any PIL image -> uint8 (H, W, 3), the way training has always seen it."""
    image = ImageOps.exif_transpose(image)  # phone photos are stored sideways with a rotation tag
    if image.mode in SIXTEEN_BIT_MODES:
        # convert("RGB") would clip 16-bit values to 255 instead of rescaling them.
        pixels = np.clip(np.asarray(image), 0, 65535).astype(np.uint16) >> 8
        image = Image.fromarray(pixels.astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (image.mode == "P" and "transparency" in image.info):
        # Colours under transparent pixels are arbitrary (often black); show them on white.
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return np.asarray(image.convert("RGB"))


def decode_image(source: str | Path | bytes) -> np.ndarray:
    """uint8 (H, W, 3) from a path or encoded bytes; anything that is not a whole image raises
    ValueError naming the source (truncated files fail here, not later)."""
    encoded = isinstance(source, (bytes, bytearray, memoryview))
    name = f"<{len(source)} bytes>" if encoded else str(source)
    try:
        with Image.open(io.BytesIO(bytes(source)) if encoded else source) as image:
            image.load()
            return _to_rgb(image)
    except Image.DecompressionBombError as error:  # PIL's message names the pixels and the limit
        raise ValueError(
            f"cannot read an image from {name}: refused as a possible decompression bomb ({error}); "
            "PIL.Image.MAX_IMAGE_PIXELS sets the limit"
        ) from None
    except (OSError, ValueError, SyntaxError) as error:
        raise ValueError(f"cannot read an image from {name}: {error}") from None


def array_to_rgb(array: np.ndarray) -> np.ndarray:
    """uint8 (H, W), (H, W, 3) or (H, W, 4) -> uint8 (H, W, 3), transparency on white as for files."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"image arrays must be uint8, got {array.dtype}")
    if array.ndim == 2:
        return np.repeat(array[..., None], 3, axis=-1)
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise ValueError(f"expected (H, W), (H, W, 3) or (H, W, 4) pixels, got shape {array.shape}")
    return _to_rgb(Image.fromarray(array)) if array.shape[-1] == 4 else array


def shorter_side_size(h: int, w: int, side: int) -> tuple[int, int]:
    """(height, width) of an h x w image resized so its shorter side is `side`, aspect kept."""
    if min(h, w) == side:
        return h, w
    scale = side / min(h, w)
    return max(side, round(h * scale)), max(side, round(w * scale))


def min_side_size(h: int, w: int, min_side: int | None) -> tuple[int, int]:
    """(height, width) after `upscale_to_min_side`."""
    return (h, w) if not min_side or min(h, w) >= min_side else shorter_side_size(h, w, min_side)


def check_pixels(source: tuple[int, int], resized: tuple[int, int], max_pixels: int | None, what: str = "an image"):
    """ValueError when `resized` (height, width) holds more than `max_pixels` pixels (None: no cap)."""
    (h, w), (rh, rw) = source, resized
    if max_pixels is not None and rh * rw > max_pixels:
        became = f"becomes {rw}x{rh} after resizing" if (rh, rw) != (h, w) else "is not resized"
        raise ValueError(
            f"{what} of {w}x{h} pixels (width x height) {became}: {rh * rw} pixels, over this tokenizer's "
            f"cap of {max_pixels} pixels (max_pixels; a model config's max_pixels raises it)"
        )


def resize_shorter_side(pixels: np.ndarray, side: int) -> np.ndarray:
    """Bicubic resizing (antialiased when shrinking) so the shorter side is `side`, aspect kept."""
    h, w = pixels.shape[:2]
    size = shorter_side_size(h, w, side)
    if size == (h, w):
        return pixels
    return np.asarray(Image.fromarray(pixels).resize(size[::-1], Image.Resampling.BICUBIC))


def upscale_to_min_side(pixels: np.ndarray, min_side: int | None) -> np.ndarray:
    """Bicubic upscaling so the shorter side is `min_side` when it is below; larger images are left alone."""
    if not min_side or min(pixels.shape[:2]) >= min_side:
        return pixels
    return resize_shorter_side(pixels, min_side)


def centre_window(h: int, w: int, size: int | None, multiple: int) -> Window:
    """A centred window of at most `size` pixels per side (None: no limit), rounded down to a multiple."""
    ch = min(size or h, h) // multiple * multiple
    cw = min(size or w, w) // multiple * multiple
    if ch == 0 or cw == 0:
        raise ValueError(f"image {h}x{w} is smaller than {multiple} pixels per side")
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def center_crop_to_multiple(image: np.ndarray, size: int | None, multiple: int) -> np.ndarray:
    top, left, h, w = centre_window(*image.shape[:2], size, multiple)
    return image[top : top + h, left : left + w]


def pixels_to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) or (B, H, W, 3) -> float (B, 3, H, W) in [-1, 1]."""
    array = np.require(pixels, requirements=["C", "W"])  # a copy only where torch needs one
    if array.ndim == 3:
        array = array[None]
    return torch.from_numpy(array).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def tensor_to_images(x: torch.Tensor) -> np.ndarray:
    """float (B, 3, H, W) in [-1, 1] -> uint8 (B, H, W, 3)."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


@dataclasses.dataclass
class ImageInputSpec(InputSpec):
    """How images are prepared for one tokenizer (see the module docstring)."""

    modality: ClassVar[str] = "image"
    info_fields: ClassVar[dict[str, type]] = {
        "channels": int,
        "height": int,
        "width": int,
        "source_height": int,
        "source_width": int,
    }

    channels: int = 3
    min_side: int | None = None  # shorter sides below this are upscaled to it (training's crop size)
    crop_size: int | None = None  # encoding keeps a centred crop of at most this per side
    multiple_of: int = 1  # ... whose sides are multiples of this (the tokenizer's downsampling)
    # Pretrained models that expect one resolution: the shorter side is resized (up or down) to
    # this before the crop. None: only the min_side upscaling.
    resize_to: int | None = None
    max_pixels: int | None = DEFAULT_MAX_PIXELS  # pixels per image after resizing; more is an error

    def prepare_pixels(self, pixels: np.ndarray, window: Callable[[int, int], Window] | None = None) -> Prepared:
        """uint8 (H, W, 3) -> one example: upscaled to min_side, cut to `window(h, w)` (default:
        the centred crop this spec describes), in [-1, 1]. ValueError, before any resizing, when
        the resized image would hold more than `max_pixels`."""
        source_h, source_w = pixels.shape[:2]
        check_pixels((source_h, source_w), self.resized_size(source_h, source_w), self.max_pixels)
        if self.resize_to:
            pixels = resize_shorter_side(pixels, self.resize_to)
        pixels = upscale_to_min_side(pixels, self.min_side)
        h, w = pixels.shape[:2]
        top, left, ch, cw = (window or self._centre)(h, w)
        x = pixels_to_tensor(pixels[top : top + ch, left : left + cw])
        info = {"channels": 3, "height": ch, "width": cw, "source_height": source_h, "source_width": source_w}
        return Prepared(x, [info])

    def resized_size(self, h: int, w: int) -> tuple[int, int]:
        """(height, width) of an h x w image after this spec's resizing, before the crop."""
        if self.resize_to:
            h, w = shorter_side_size(h, w, self.resize_to)
        return min_side_size(h, w, self.min_side)

    def to_json(self) -> dict:
        decoding = "8-bit RGB: 16-bit rescaled, alpha on white, EXIF rotation applied; bicubic upscaling"
        return {**super().to_json(), "range": [-1.0, 1.0], "decoding": decoding}

    def _centre(self, h: int, w: int) -> Window:
        return centre_window(h, w, self.crop_size, self.multiple_of)

    def prepare(self, media: Any) -> Prepared:
        """A path or encoded bytes, a PIL image, uint8 pixels (H, W[, 3|4]) or a batch (B, H, W, 3),
        or a list of any of these (one image each) -> (B, 3, H, W) in [-1, 1]. A float tensor
        (B, 3, H, W) in [-1, 1] is taken as already prepared."""
        if torch.is_tensor(media):
            if not media.is_floating_point() or media.ndim != 4 or media.shape[1] != self.channels:
                raise ValueError(
                    f"image tensors must be float (B, {self.channels}, H, W) in [-1, 1], "
                    f"got {media.dtype} {tuple(media.shape)}"
                )
            h, w = media.shape[-2:]
            info = {"channels": self.channels, "height": h, "width": w, "source_height": h, "source_width": w}
            return Prepared(media, [dict(info) for _ in range(media.shape[0])])
        if isinstance(media, np.ndarray) and media.ndim == 4:
            media = list(media)
        items = media if isinstance(media, (list, tuple)) else [media]
        if not items:
            raise ValueError("no images given")
        return stack_prepared([self.prepare_pixels(self._pixels(item)) for item in items], "images")

    @staticmethod
    def _pixels(item: Any) -> np.ndarray:
        if isinstance(item, ENCODED):
            return decode_image(item)
        if isinstance(item, Image.Image):
            return _to_rgb(item)
        return array_to_rgb(item)

    def write_file(self, item: Any, path) -> None:
        """uint8 (H, W, 3) pixels -> a PNG."""
        Image.fromarray(np.asarray(item, dtype=np.uint8)).save(path, format="PNG")

    def to_media(self, x: torch.Tensor, info: list[dict] | None = None) -> np.ndarray:
        return tensor_to_images(x)
