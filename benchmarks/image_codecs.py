"""The 2-D image tokenizer against JPEG, WebP and AVIF (Pillow) at equal or nearest bits per pixel.

Trains the quickstart recipe (configs/quickstart.yaml) on scikit-image's photos plus PyWavelets'
(`pip install PyWavelets`; skipped when absent), for the quickstart budget unless --max-steps says
otherwise, saves the tokenizer, and evaluates it with `mmtok eval`'s harness on the 5 held-out
photos (256x256 centre crops): its PSNR/SSIM/MS-SSIM/HaarPSI at its bits per pixel next to each
codec at the lowest quality whose bits per pixel reach it, and the codecs' quality sweeps. The
report folder (index.html, report.json, plots) is written to OUT/report.

    python benchmarks/image_codecs.py --out runs/bench-image [--max-steps N]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from PIL import Image

from mmtok.data import write_sample_images
from mmtok.eval.harness import EvalOptions, run_eval
from mmtok.eval.report.text import markdown_summary
from mmtok.train.config import load_run_config
from mmtok.train.image_recipe import sample_image_split
from mmtok.train.quickstart import QUICKSTART_CONFIG
from mmtok.train.trainer import Trainer


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

    tokenizer_dir = trainer.inference_model.save_pretrained(out / "tokenizer")
    report = run_eval([tokenizer_dir], f"sample-images:{held_out}", out / "report", EvalOptions(crop_size=256))
    print(f"\n2-D FSQ tokenizer after {config.train.max_steps} steps vs the codecs on held-out 256x256 crops")
    print(markdown_summary(report))
    print("training codebook health (last window):", json.dumps(trainer.last_health))
    print(f"report: {out / 'report' / 'index.html'}")


if __name__ == "__main__":
    main()
