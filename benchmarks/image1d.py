#!/usr/bin/env python
"""The 1-D flexible-length tokenizer's rate-distortion curve, next to the 2-D tokenizer at its bits.

Trains configs/image1d.yaml, and the 2-D quickstart recipe (configs/quickstart.yaml) with the same
crop size, batch size and number of steps, both on scikit-image's photos; then `mmtok eval`
(mmtok.eval.harness) sweeps k = 1, 2, 4, ..., K on the held-out photos (centre crops at the
training size) beside the 2-D tokenizer and JPEG/WebP/AVIF, and this prints the k / bits / PSNR /
SSIM table with the 2-D tokenizer's row, the targets, and every latent position's codebook usage
(over random training crops). The report folder (rate-distortion plots, grid) is OUT/eval.

    python benchmarks/image1d.py --out runs/bench-image1d [--max-steps N] [dotted overrides of the 1-D run]
"""

from __future__ import annotations

import argparse
import json
from importlib.resources import files
from pathlib import Path

import torch

from mmtok.eval.aggregate import means
from mmtok.eval.harness import EvalOptions, evaluate
from mmtok.eval.systems import TokenizerSystem
from mmtok.health import CodebookMonitor
from mmtok.train.config import load_run_config
from mmtok.train.image_recipe import sample_image_split
from mmtok.train.quickstart import QUICKSTART_CONFIG
from mmtok.train.trainer import Trainer

IMAGE1D_CONFIG = files("mmtok.configs").joinpath("image1d.yaml")
CROPS_PER_TRAINING_IMAGE = 8  # random crops for the per-position usage count


@torch.no_grad()
def position_usage(tokenizer, x: torch.Tensor) -> list[dict]:
    """Codebook use of every latent position over the images x (B, C, S, S): one entry per position
    with CodebookMonitor's figures per codebook."""
    monitors = [
        CodebookMonitor(tokenizer.codebook_sizes, tokenizer.num_codebooks) for _ in range(tokenizer.num_latent_tokens)
    ]
    for monitor, ids in zip(monitors, tokenizer.ids_by_position(x)):
        monitor.update(ids)
    return [{"position": j, "codebooks": monitor.compute()} for j, monitor in enumerate(monitors)]


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
    systems = [TokenizerSystem.from_model("1-D", tok_1d), TokenizerSystem.from_model("2-D", tok_2d)]
    report = evaluate(systems, held, out / "eval", EvalOptions(crop_size=size), data="the quickstart's held-out photos")
    dataset = trainer_1d.dataset  # random crops, as in training
    crops = torch.stack([dataset[i % len(dataset)] for i in range(CROPS_PER_TRAINING_IMAGE * len(dataset))])
    positions = position_usage(tok_1d, crops.to(next(tok_1d.parameters()).device))
    print_report(report, positions, steps, size, tok_1d.codebook_sizes)
    (out / "image1d_positions.json").write_text(json.dumps(positions, indent=2))
    print(f"\nreport: {out / 'eval' / 'index.html'}")


def print_report(report: dict, positions: list[dict], steps: int, size: int, codebook_sizes: list[int]) -> None:
    one_d, two_d = report["tokenizers"]
    rows = [(p["value"], means(p["summary"])) for p in one_d["sweep"]]
    reference = means(two_d["summary"])
    print(
        f"\n1-D tokenizer after {steps} steps on {len(report['items'])} held-out {size}x{size} crops "
        f"({one_d['num_codebooks']} codebook(s) of {codebook_sizes} codes)\n"
    )
    print("| k | bits per image | PSNR (dB) | SSIM |")
    print("|---:|---:|---:|---:|")
    for k, row in rows:
        print(f"| {k} | {row['bits']:.0f} | {row['psnr']:.2f} | {row['ssim']:.3f} |")
    print(f"| 2-D tokenizer | {reference['bits']:.0f} | {reference['psnr']:.2f} | {reference['ssim']:.3f} |")
    psnrs = [row["psnr"] for _, row in rows]
    monotonic = all(b > a for a, b in zip(psnrs, psnrs[1:]))
    # The 1-D row at the 2-D tokenizer's bits, or the longest one below them when none is equal.
    at_bits = [(k, row) for k, row in rows if row["bits"] <= reference["bits"] * (1 + 1e-6)]
    print("\ntargets:")
    print(f"- PSNR rises monotonically with k: {'yes' if monotonic else 'no'} ({', '.join(f'{p:.2f}' for p in psnrs)})")
    if at_bits:
        k, row = at_bits[-1]
        gap = row["psnr"] - reference["psnr"]
        equal = abs(row["bits"] - reference["bits"]) < 1e-6 * reference["bits"]
        print(
            f"- at k={k} ({row['bits']:.0f} bits, {'equal to' if equal else 'below'} the 2-D tokenizer's "
            f"{reference['bits']:.0f}): {gap:+.2f} dB vs the 2-D tokenizer -> "
            f"{'met' if gap >= -1.0 else 'not met'} (within 1 dB or better)"
        )
    else:
        print("- no k reaches the 2-D tokenizer's bits")
    print("\nper-position codebook usage over random training crops (distinct codes used / perplexity, per codebook):")
    collapsed, cells = [], []
    for entry in positions:
        used = [n - s["dead_codes"] for s, n in zip(entry["codebooks"], codebook_sizes)]
        if min(used) <= 1:
            collapsed.append(entry["position"])
        cells.append(
            f"{entry['position']}: " + " ".join(f"{u}/{s['perplexity']:.0f}" for u, s in zip(used, entry["codebooks"]))
        )
    for start in range(0, len(cells), 4):
        print("  " + " | ".join(cells[start : start + 4]))
    total = positions[0]["codebooks"][0]["total"]
    print(
        f"- no position collapsed to a single code ({total} crops): "
        f"{'yes' if not collapsed else 'no, positions ' + str(collapsed)}"
    )


if __name__ == "__main__":
    main()
