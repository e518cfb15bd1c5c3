"""Image datasets for training tokenizers: a folder, a webdataset-style .tar, or a .parquet file.

Items go through the one image input path (`mmtok.data.image_io`): the same decoding and
normalisation as `FrozenTokenizer.encode` and `mmtok tokenize`; only the window differs (a random
`size` x `size` crop instead of the centred one) and a horizontal flip may follow.

Undecodable files never stop training. Files are only filtered by extension when the index is
built (opening every file up front would make startup as slow as an epoch for large folders, and
``Image.verify()`` misses truncated JPEGs anyway). Instead ``__getitem__`` on an item that fails
to decode logs a warning, records it in ``failed_sources`` / ``num_failed`` and returns the next
decodable item; ``validate()`` decodes everything once in the main process (DataLoader workers
keep their own counts) and drops the failures from the index.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from mmtok.data.decoded import DecodedSourceDataset
from mmtok.data.image_io import ImageInputSpec, Window, centre_window, decode_image, resize_shorter_side
from mmtok.modalities import MODALITIES

IMAGE_EXTENSIONS = MODALITIES["image"].extensions
PARQUET_IMAGE_COLUMNS = MODALITIES["image"].parquet_columns

__all__ = ["IMAGE_EXTENSIONS", "PARQUET_IMAGE_COLUMNS", "ImageDataset"]


class ImageDataset(DecodedSourceDataset):
    """Images from ``source`` as float tensors (3, size, size) in [-1, 1].

    ``source`` is a folder (searched recursively, sorted by relative path), an uncompressed
    webdataset-style ``.tar`` (image members, sorted by name) or a ``.parquet`` file whose
    ``column`` (default: first of ``PARQUET_IMAGE_COLUMNS``) holds encoded bytes, plainly or as a
    ``{"bytes": ...}`` struct. ``spec`` is the tokenizer's input spec (default: upscale images
    whose shorter side is below ``size`` to it); then a random (or centred) ``size`` crop and an
    optional horizontal flip.
    """

    def __init__(
        self,
        source: str | Path,
        *,
        size: int,
        spec: ImageInputSpec | None = None,
        random_crop: bool = True,
        random_flip: bool = True,
        hue_rotation: float = 0.0,
        min_scale: float = 1.0,
        grayscale: float = 0.0,
        column: str | None = None,
    ):
        if size <= 0:
            raise ValueError(f"size must be positive, got {size}")
        self.spec = spec if spec is not None else ImageInputSpec(min_side=size)
        if (self.spec.min_side or 0) < size:
            raise ValueError(f"training crops of {size} px need spec.min_side >= {size}, got {self.spec.min_side}")
        super().__init__(source, modality="image", column=column)
        if not 0.0 <= hue_rotation <= 1.0:
            raise ValueError(f"hue_rotation is a probability in [0, 1], got {hue_rotation}")
        self.size, self.random_crop, self.random_flip = size, random_crop, random_flip
        self.hue_rotation = hue_rotation
        if not 0.0 < min_scale <= 1.0:
            raise ValueError(f"min_scale is a resizing factor in (0, 1], got {min_scale}")
        self.min_scale = min_scale
        if not 0.0 <= grayscale <= 1.0:
            raise ValueError(f"grayscale is a probability in [0, 1], got {grayscale}")
        self.grayscale = grayscale

    def _decode(self, data: bytes, name: str) -> np.ndarray:
        return decode_image(data)

    def _window(self, h: int, w: int) -> Window:
        if not self.random_crop:
            return centre_window(h, w, self.size, 1)
        top = int(torch.randint(h - self.size + 1, ()))
        left = int(torch.randint(w - self.size + 1, ()))
        return top, left, self.size, self.size

    def _item(self, pixels: np.ndarray) -> torch.Tensor:
        if self.min_scale < 1.0:
            pixels = self._zoom_out(pixels)
        x = self.spec.prepare_pixels(pixels, window=self._window).tensor[0]
        if self.random_flip and bool(torch.rand(()) < 0.5):
            x = x.flip(-1)
        return augment_colour(x, self.hue_rotation, self.grayscale)

    def _zoom_out(self, pixels: np.ndarray) -> np.ndarray:
        """The photo resized by a log-uniform factor in [min_scale, 1], its shorter side kept at
        least the crop size: crops of a few photos then show both fine detail and whole scenes, as
        photos of other sizes will."""
        short = min(pixels.shape[:2])
        factor = math.exp(float(torch.empty(()).uniform_(math.log(self.min_scale), 0.0)))
        side = max(self.size, round(short * factor))
        return pixels if side >= short else resize_shorter_side(pixels, side)


def augment_colour(x: torch.Tensor, hue_rotation: float, grayscale: float) -> torch.Tensor:
    """(3, ...) pixels (an image, or a clip whose frames all get the same change): with probability
    `hue_rotation` their hues turned by a random angle, otherwise with probability `grayscale`
    turned gray, otherwise as they are. Draws from torch's RNG, which the trainer seeds per item."""
    if hue_rotation and bool(torch.rand(()) < hue_rotation):
        return rotate_hue(x, float(torch.rand(())) * 2 * math.pi)
    if grayscale and bool(torch.rand(()) < grayscale):
        return to_gray(x)
    return x


LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, as Pillow's "L" mode


def to_gray(x: torch.Tensor) -> torch.Tensor:
    """(3, ...) pixels in [-1, 1] (an image (3, H, W) or a clip (3, T, H, W)) -> the same in gray
    (ITU-R 601 luma on every channel): gray versions of colour photos teach a tokenizer to give
    gray back without a cast."""
    luma = torch.einsum("c,c...->...", torch.tensor(LUMA, dtype=x.dtype), x)
    return luma.expand(3, *luma.shape).clone()


def rotate_hue(x: torch.Tensor, angle: float) -> torch.Tensor:
    """Rotates the colours of (3, ...) pixels in [-1, 1] (an image or a clip) by `angle` radians about the gray axis
    R = G = B: every pixel keeps its gray level (the mean of its channels) and its distance from
    gray, its hue turns (a few clipped where the rotated colour leaves the RGB cube). Few training
    photos show every hue; rotated copies teach a tokenizer colour as such. Written here rather than
    torchvision's `adjust_hue`, whose HSV hue shift changes each pixel's gray level."""
    axis = torch.full((3,), 1 / math.sqrt(3), dtype=x.dtype)
    cross = torch.tensor([[0, -1, 1], [1, 0, -1], [-1, 1, 0]], dtype=x.dtype) / math.sqrt(3)
    # Rodrigues' rotation formula about the unit vector `axis`.
    rotation = (
        math.cos(angle) * torch.eye(3, dtype=x.dtype)
        + math.sin(angle) * cross
        + (1 - math.cos(angle)) * torch.outer(axis, axis)
    )
    return torch.einsum("ij,j...->i...", rotation, x).clamp(-1, 1)
