"""The 2-D image tokenizer against JPEG and WebP (Pillow) at equal or nearest bits per pixel.

Trains the quickstart recipe (configs/quickstart.yaml) on scikit-image's photos plus PyWavelets'
(`pip install PyWavelets`; skipped when absent), for the quickstart budget unless --max-steps says
otherwise, then reconstructs 5 held-out photos (256x256 centre crops) and prints, per image, the
tokenizer's PSNR/SSIM at its bits per pixel next to JPEG and WebP at the quality whose bits per
pixel is closest to it from above and at their lowest quality setting.

    python benchmarks/image_codecs.py --out runs/bench-image [--max-steps N]
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mmtok.data import write_sample_images
from mmtok.data.image_io import center_crop_to_multiple, pixels_to_tensor
from mmtok.eval.image import psnr, ssim
from mmtok.eval.reconstruct import evaluate_image_tokenizer
from mmtok.train.config import load_run_config
from mmtok.train.image_recipe import sample_image_split
from mmtok.train.quickstart import QUICKSTART_CONFIG
from mmtok.train.trainer import Trainer

CODECS = {"JPEG": dict(format="JPEG", optimize=True), "WebP": dict(format="WEBP", method=6)}
QUALITIES = range(1, 96)


def write_training_folder(folder: Path, held_out: int) -> int:
    """scikit-image's photos (minus the held-out ones) and PyWavelets' as PNG files; returns the count."""
    train, _ = sample_image_split(held_out)
    write_sample_images(folder, [name for name, _ in train])
    count = len(train)
    try:
        import pywt.data
    except ImportError:
        print("PyWavelets is not installed: training on scikit-image's photos only")
        return count
    for name in ("ascent", "aero"):  # pywt's camera is scikit-image's camera, which is held out
        Image.fromarray(getattr(pywt.data, name)()).convert("RGB").save(folder / f"pywt_{name}.png")
        count += 1
    return count


def encode_with(codec: str, image: np.ndarray, quality: int) -> tuple[np.ndarray, float]:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, quality=quality, **CODECS[codec])
    bpp = buffer.tell() * 8 / (image.shape[0] * image.shape[1])
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB")), bpp


def quality_measures(original: np.ndarray, decoded: np.ndarray) -> tuple[float, float]:
    x, y = pixels_to_tensor(original), pixels_to_tensor(decoded)
    return float(psnr(y, x)[0]), float(ssim(y, x)[0])


def codec_rows(codec: str, image: np.ndarray, target_bpp: float) -> dict:
    """The codec at its lowest quality, and at the lowest quality whose bpp reaches target_bpp."""
    lowest = None
    for quality in QUALITIES:
        decoded, bpp = encode_with(codec, image, quality)
        if lowest is None:
            lowest = (quality, bpp, *quality_measures(image, decoded))
        if bpp >= target_bpp:
            return {"lowest": lowest, "matched": (quality, bpp, *quality_measures(image, decoded))}
    return {"lowest": lowest, "matched": None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench-image")
    parser.add_argument("--max-steps", type=int, default=None, help="default: the quickstart budget")
    parser.add_argument("overrides", nargs="*", help="extra dotted config overrides")
    args = parser.parse_args()
    out = Path(args.out)
    torch.manual_seed(0)

    base = load_run_config(str(QUICKSTART_CONFIG), [])
    held_out = base.data["held_out"]
    folder = out / "train-images"
    count = write_training_folder(folder, held_out)
    overrides = [f"output_dir={out / 'run'}", f"data.source={folder}", *args.overrides]
    if args.max_steps is not None:
        overrides.append(f"train.max_steps={args.max_steps}")
    config = load_run_config(str(QUICKSTART_CONFIG), overrides)
    print(f"training the quickstart recipe on {count} images for {config.train.max_steps} steps")
    trainer = Trainer(config)
    trainer.fit()
    tokenizer = trainer.inference_model

    _, held = sample_image_split(held_out)
    report = evaluate_image_tokenizer(tokenizer, held, size=256)
    factor = tokenizer.config.downsampling_factor
    rows = []
    for (name, image), tok in zip(held, report["images"]):
        crop = center_crop_to_multiple(image, 256, factor)
        row = {
            "name": name,
            "size": f"{crop.shape[0]}x{crop.shape[1]}",
            "mmtok": (tok["bpp"], tok["psnr"], tok["ssim"]),
        }
        for codec in CODECS:
            row[codec] = codec_rows(codec, crop, tok["bpp"])
        rows.append(row)

    print_table(rows, config.train.max_steps)
    print("training codebook health (last window):", json.dumps(trainer.last_health))
    out.mkdir(parents=True, exist_ok=True)
    (out / "image_codecs.json").write_text(
        json.dumps({"rows": rows, "health": trainer.last_health, "steps": config.train.max_steps}, indent=2)
    )


def print_table(rows: list[dict], steps: int) -> None:
    def cell(entry):
        if entry is None:
            return "n/a | n/a | n/a"
        quality, bpp, p, s = entry
        return f"q{quality} {bpp:.3f} | {p:.2f} | {s:.3f}"

    print(f"\n2-D FSQ tokenizer after {steps} steps vs JPEG/WebP on held-out 256x256 crops")
    print(
        "| image | size | mmtok bpp | mmtok PSNR | mmtok SSIM | JPEG@≥bpp (q, bpp) | PSNR | SSIM "
        "| WebP@≥bpp (q, bpp) | PSNR | SSIM | JPEG lowest (q, bpp) | PSNR | SSIM | WebP lowest (q, bpp) | PSNR | SSIM |"
    )
    print("|" + "---|" * 18)
    for row in rows:
        bpp, p, s = row["mmtok"]
        print(
            f"| {row['name']} | {row['size']} | {bpp:.3f} | {p:.2f} | {s:.3f} | {cell(row['JPEG']['matched'])} | "
            f"{cell(row['WebP']['matched'])} | {cell(row['JPEG']['lowest'])} | {cell(row['WebP']['lowest'])} |"
        )
    means = {key: np.mean([r["mmtok"][i] for r in rows]) for i, key in enumerate(("bpp", "psnr", "ssim"))}
    print(f"| mean | | {means['bpp']:.3f} | {means['psnr']:.2f} | {means['ssim']:.3f} |" + " |" * 12)


if __name__ == "__main__":
    main()
