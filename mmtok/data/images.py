"""Image datasets for training tokenizers: a folder, a webdataset-style .tar, or a .parquet file.

Undecodable files never stop training. Files are only filtered by extension when
the index is built (opening every file up front would make startup as slow as an
epoch for large folders, and ``Image.verify()`` misses truncated JPEGs anyway).
Instead:

* ``__getitem__`` on an item that fails to decode logs a warning, records it in
  ``failed_sources`` / ``num_failed`` and returns the next decodable item.
* With DataLoader workers every worker has its own copy of the dataset, so the
  counts it records are not visible in the main process (only the warnings are).
  Call ``validate()`` before building the DataLoader to decode everything once in
  the main process: it returns the failures and drops them from the index, so the
  workers never meet them.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

from mmtok.data.decoded import DecodedSourceDataset
from mmtok.data.sources import IMAGE_EXTENSIONS, PARQUET_IMAGE_COLUMNS

__all__ = ["IMAGE_EXTENSIONS", "PARQUET_IMAGE_COLUMNS", "ImageDataset"]


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I", "I;16", "I;16B", "I;16L"):
        # 16-bit grayscale: convert("RGB") would clip to 255 instead of rescaling.
        pixels = np.clip(np.asarray(img), 0, 65535).astype(np.uint16) >> 8
        img = Image.fromarray(pixels.astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Colours under transparent pixels are arbitrary (often black); show them on white.
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return img.convert("RGB")


def _decode(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as img:
        img.load()  # decode fully now, so truncated files fail here and not in the transforms
        return _to_rgb(img)


def _upscale_to(img: Image.Image, size: int) -> Image.Image:
    """Resize so the shorter side is ``size`` if it is smaller; larger images are left alone."""
    w, h = img.size
    if min(w, h) >= size:
        return img
    scale = size / min(w, h)
    new_size = (max(size, round(w * scale)), max(size, round(h * scale)))
    return img.resize(new_size, Image.Resampling.BICUBIC)


class ImageDataset(DecodedSourceDataset):
    """Images from ``source`` as float tensors (3, size, size) in [-1, 1].

    ``source`` is a folder (searched recursively, sorted by relative path), an
    uncompressed webdataset-style ``.tar`` (image members, sorted by name) or a
    ``.parquet`` file whose ``column`` (default: first of ``PARQUET_IMAGE_COLUMNS``)
    holds encoded bytes, either plainly or as a ``{"bytes": ...}`` struct. Images
    whose shorter side is below ``size`` are upscaled to it; then a random (or
    center) ``size`` crop and an optional horizontal flip. See the module docstring
    for how undecodable files are handled.
    """

    def __init__(
        self,
        source: str | Path,
        *,
        size: int,
        random_crop: bool = True,
        random_flip: bool = True,
        column: str | None = None,
    ):
        if size <= 0:
            raise ValueError(f"size must be positive, got {size}")
        super().__init__(source, modality="image", column=column)
        self.size = size
        steps = [v2.RandomCrop(size) if random_crop else v2.CenterCrop(size)]
        if random_flip:
            steps.append(v2.RandomHorizontalFlip())
        steps += [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize([0.5] * 3, [0.5] * 3)]
        self._transform = v2.Compose(steps)

    def _decode(self, data: bytes, name: str) -> Image.Image:
        return _decode(data)

    def _item(self, image: Image.Image) -> torch.Tensor:
        return self._transform(_upscale_to(image, self.size))
