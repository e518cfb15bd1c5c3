"""Natural and textured photographs inside mmtok's installed dependencies, for the quickstart,
smoke tests and demos: scikit-image's, scikit-learn's two sample photos (china, flower) and
matplotlib's grace_hopper.

Only images shipped inside the wheels are used. The others in ``skimage.data`` (brain, eagle,
lily, skin, kidney, cells3d, ...) need ``pooch`` and a download; leaving them out keeps the set,
and therefore every held-out split, the same on every machine, online or not.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["DEFAULT_HELD_OUT", "SAMPLE_IMAGE_NAMES", "sample_images", "write_sample_images"]

# Deliberately left out: cat (same picture as chelsea), binary_blobs, checkerboard,
# horse, logo, shepp_logan_phantom (synthetic drawings or binary masks) and
# lfw_subset (200 face thumbnails of 25x25).
SAMPLE_IMAGE_NAMES = (
    "astronaut",
    "brick",
    "camera",
    "cell",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "colorwheel",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "microaneurysms",
    "moon",
    "motorcycle",  # left view of skimage.data.stereo_motorcycle
    "page",
    "retina",
    "rocket",
    "text",
    # The colour photos other dependencies ship: scikit-image's set is half gray.
    "china",  # scikit-learn: a temple among trees
    "flower",  # scikit-learn
    "grace_hopper",  # matplotlib: a portrait
)

NamedImage = tuple[str, np.ndarray]
# Photos the quickstart keeps out of training (chelsea, rocket, china), and `mmtok eval`'s
# "sample-images" with them.
DEFAULT_HELD_OUT = 3


def _to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype != np.uint8:
        raise TypeError(f"expected uint8 pixels, got {image.dtype}")
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3])


def _load(name: str) -> np.ndarray:
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    if name == "grace_hopper":
        import matplotlib.cbook

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as file:
            return np.asarray(Image.open(file).convert("RGB"))
    import skimage.data

    if name == "motorcycle":
        return skimage.data.stereo_motorcycle()[0]
    return getattr(skimage.data, name)()


@functools.cache
def _load_all() -> tuple[NamedImage, ...]:
    images = []
    for name in SAMPLE_IMAGE_NAMES:
        pixels = _to_rgb_uint8(_load(name))
        pixels.setflags(write=False)  # shared by the cache; callers get copies
        images.append((name, pixels))
    return tuple(images)


def sample_images(held_out: int = 0, seed: int = 0):
    """The bundled photographs as ``[(name, uint8 array of shape (H, W, 3)), ...]``.

    Grayscale images are repeated over three channels. With ``held_out == 0`` the
    return value is that list, in ``SAMPLE_IMAGE_NAMES`` order. With ``held_out > 0``
    it is a pair ``(train, held)``: ``held_out`` images picked by a permutation seeded
    with ``seed`` go to ``held``, the rest to ``train``; both keep the name order.
    """
    images = [(name, pixels.copy()) for name, pixels in _load_all()]
    if held_out == 0:
        return images
    if not 0 < held_out < len(images):
        raise ValueError(f"held_out must be in [0, {len(images) - 1}], got {held_out}")
    held_idx = set(np.random.default_rng(seed).permutation(len(images))[:held_out].tolist())
    train = [item for i, item in enumerate(images) if i not in held_idx]
    held = [item for i, item in enumerate(images) if i in held_idx]
    return train, held


def write_sample_images(folder: str | Path, names: Iterable[str] | None = None) -> list[Path]:
    """Save the sample images (all, or those in ``names``) as ``<folder>/<name>.png``."""
    wanted = list(SAMPLE_IMAGE_NAMES if names is None else names)
    unknown = sorted(set(wanted) - set(SAMPLE_IMAGE_NAMES))
    if unknown:
        raise ValueError(f"unknown sample images {unknown}; available: {', '.join(SAMPLE_IMAGE_NAMES)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    by_name = dict(_load_all())
    paths = []
    for name in wanted:
        path = folder / f"{name}.png"
        Image.fromarray(by_name[name]).save(path)
        paths.append(path)
    return paths
