#!/usr/bin/env python
"""The 1-D flexible-length tokenizer's rate-distortion curve, next to the 2-D tokenizer at its bits.

Trains configs/image1d.yaml, and the 2-D quickstart recipe (configs/quickstart.yaml) with the same
crop size, batch size and number of steps, both on scikit-image's photos; then sweeps
k = 1, 2, 4, ..., K on the held-out photos (centre crops at the training size) and prints a
Markdown table k / bits / PSNR / SSIM with the 2-D tokenizer's row at its bits, the targets, and
every latent position's codebook usage (over random training crops). Writes JSON and a PNG plot.

    python benchmarks/image1d.py --out runs/bench-image1d [--max-steps N] [dotted overrides of the 1-D run]
"""

from __future__ import annotations

import argparse
import json
from importlib.resources import files
from pathlib import Path

import torch

from mmtok.eval.rate_distortion import position_usage, save_sweep, sweep_num_tokens
from mmtok.eval.reconstruct import evaluate_image_tokenizer
from mmtok.train.config import load_run_config
from mmtok.train.image_recipe import sample_image_split
from mmtok.train.quickstart import QUICKSTART_CONFIG
from mmtok.train.trainer import Trainer

IMAGE1D_CONFIG = files("mmtok.configs").joinpath("image1d.yaml")
CROPS_PER_TRAINING_IMAGE = 8  # random crops for the per-position usage count


def train(config_path, overrides: list[str]):
    trainer = Trainer(load_run_config(str(config_path), overrides))
    trainer.fit()
    return trainer, trainer.inference_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench-image1d")
    parser.add_argument("--max-steps", type=int, default=None, help="both runs (default: configs/image1d.yaml's)")
    parser.add_argument("overrides", nargs="*", help="dotted overrides of the 1-D run, e.g. train.batch_size=4")
    args = parser.parse_args()
    out = Path(args.out)
    shared = [f"data.cache_dir={out / 'sample-images'}"]
    if args.max_steps is not None:
        shared.append(f"train.max_steps={args.max_steps}")

    trainer_1d, tok_1d = train(IMAGE1D_CONFIG, [f"output_dir={out / 'image1d'}", *shared, *args.overrides])
    config_1d = trainer_1d.config
    size, steps, batch = trainer_1d.recipe.data.size, config_1d.train.max_steps, config_1d.train.batch_size
    print(f"\n1-D tokenizer: {steps} steps, batch {batch}, {size}x{size} crops; training the 2-D one alike")
    _, tok_2d = train(
        QUICKSTART_CONFIG,
        [
            f"output_dir={out / 'image2d'}",
            *shared,
            f"data.size={size}",
            f"train.max_steps={steps}",
            f"train.batch_size={batch}",
        ],
    )

    _, held = sample_image_split(trainer_1d.recipe.data.held_out)
    result = sweep_num_tokens(tok_1d, held)
    dataset = trainer_1d.dataset  # random crops, as in training
    crops = torch.stack([dataset[i % len(dataset)] for i in range(CROPS_PER_TRAINING_IMAGE * len(dataset))])
    result["training_positions"] = position_usage(tok_1d, crops.to(next(tok_1d.parameters()).device))
    result["steps"], result["batch_size"] = steps, batch

    report_2d = evaluate_image_tokenizer(tok_2d, held, size=size)
    mean = report_2d["mean"]
    reference = {
        "label": f"2-D quickstart tokenizer ({size // tok_2d.config.downsampling_factor}² tokens)",
        "bits": mean["bpp"] * size * size,
        "psnr": mean["psnr"],
        "ssim": mean["ssim"],
    }

    print_report(result, reference)
    out.mkdir(parents=True, exist_ok=True)
    save_sweep(result, out / "image1d_sweep.json", out / "image1d_sweep.png", reference)
    (out / "image2d_report.json").write_text(json.dumps(report_2d, indent=2))
    print(f"\nwrote {out / 'image1d_sweep.json'} and {out / 'image1d_sweep.png'}")


def print_report(result: dict, reference: dict) -> None:
    rows = result["rows"]
    print(
        f"\n1-D tokenizer after {result['steps']} steps on {len(result['images'])} held-out "
        f"{result['image_size']}x{result['image_size']} crops ({result['num_codebooks']} codebook(s) of "
        f"{result['codebook_sizes']} codes: {result['bits_per_token']:.1f} bits per token)\n"
    )
    print("| k | bits per image | PSNR (dB) | SSIM |")
    print("|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['k']} | {row['bits']:.0f} | {row['psnr']:.2f} | {row['ssim']:.3f} |")
    print(f"| {reference['label']} | {reference['bits']:.0f} | {reference['psnr']:.2f} | {reference['ssim']:.3f} |")

    psnrs = [row["psnr"] for row in rows]
    monotonic = all(b > a for a, b in zip(psnrs, psnrs[1:]))
    # The 1-D row at the 2-D tokenizer's bits, or the longest one below them when none is equal.
    at_bits = [row for row in rows if row["bits"] <= reference["bits"] * (1 + 1e-6)]
    print("\ntargets:")
    print(f"- PSNR rises monotonically with k: {'yes' if monotonic else 'no'} ({', '.join(f'{p:.2f}' for p in psnrs)})")
    if at_bits:
        row = at_bits[-1]
        gap = row["psnr"] - reference["psnr"]
        equal = abs(row["bits"] - reference["bits"]) < 1e-6 * reference["bits"]
        print(
            f"- at k={row['k']} ({row['bits']:.0f} bits, {'equal to' if equal else 'below'} the 2-D tokenizer's "
            f"{reference['bits']:.0f}): {gap:+.2f} dB vs the 2-D tokenizer -> "
            f"{'met' if gap >= -1.0 else 'not met'} (within 1 dB or better)"
        )
    else:
        print("- no k reaches the 2-D tokenizer's bits")

    print("\nper-position codebook usage over random training crops (distinct codes used / perplexity, per codebook):")
    collapsed, cells = [], []
    for entry in result["training_positions"]:
        used = [size - s["dead_codes"] for s, size in zip(entry["codebooks"], result["codebook_sizes"])]
        if min(used) <= 1:
            collapsed.append(entry["position"])
        cells.append(
            f"{entry['position']}: " + " ".join(f"{u}/{s['perplexity']:.0f}" for u, s in zip(used, entry["codebooks"]))
        )
    for start in range(0, len(cells), 4):
        print("  " + " | ".join(cells[start : start + 4]))
    total = result["training_positions"][0]["codebooks"][0]["total"]
    print(
        f"- no position collapsed to a single code ({total} crops): "
        f"{'yes' if not collapsed else 'no, positions ' + str(collapsed)}"
    )


if __name__ == "__main__":
    main()
