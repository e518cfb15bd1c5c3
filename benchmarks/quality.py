"""What the default recipes' tokens keep after a CPU budget, next to the classical codecs and the
peers' recipes trained on the same data for the same time, with pictures.

For each recipe: train for its wall-clock budget (`train.max_minutes`; run with OMP_NUM_THREADS set
to the cores you give it), train the peer's recipe on the same dataset for the same time, then
measure both on held-out material and write `quality.json`, a table, and pictures:

- quickstart: configs/quickstart.yaml as `mmtok quickstart` runs it (scikit-image's photos), 9 min;
- image: the same 2-D recipe on colour photographs (data_cache/images/train), 60 min;
- image1d: configs/image1d.yaml on the same photographs, 10 min, PSNR per number of tokens k next to
  the 2-D quickstart tokenizer at equal bits;
- audio: configs/audio_rvq.yaml on speech and music, 60 min, at 2, 4 and 8 codebooks.

Images are held-out colour photos (the quickstart's held-out chelsea, rocket and china plus
data_cache/images/heldout)
against the taming VQGAN (diffusers.VQModel) and JPEG/WebP at the lowest quality whose bits reach
the tokenizer's; audio is held-out speech and music against DAC (transformers' DacModel) and Opus at
6 and 12 kbps. Budgets can be scaled with --minutes; --smoke runs tiny models for seconds each on
generated data (the test suite runs it).

    PYTHON=python scripts/fetch_data.sh data_cache
    OMP_NUM_THREADS=2 python benchmarks/quality.py --data data_cache --out runs/quality [--recipes quickstart image]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path

import torch
from peers import train_peer_like, vqgan, vqgan_bits_per_pixel, vqgan_loss, vqgan_reconstruct
from quality_image import Method, compare, heldout_photos, save_grid, tokenizer_method

from mmtok.eval.image import psnr
from mmtok.eval.rate_distortion import sweep_num_tokens
from mmtok.health import CodebookMonitor
from mmtok.train.config import load_run_config
from mmtok.train.trainer import Trainer

CONFIGS = Path(__file__).parents[1] / "configs"


@dataclasses.dataclass
class Recipe:
    name: str
    kind: str  # image | image1d | audio
    config: str
    minutes: float
    data: str | None  # the training data below --data; None: the config's own source
    smoke: tuple[str, ...] = ()  # overrides that make the model tiny for --smoke


TINY_IMAGE = ("model.base_channels=8", "model.channel_multipliers=[1,2,2,2]", "model.image_size=32")
RECIPES = {
    "quickstart": Recipe("quickstart", "image", "quickstart.yaml", 9, None, TINY_IMAGE),
    "image": Recipe("image", "image", "quickstart.yaml", 60, "images/train", TINY_IMAGE),
    "image1d": Recipe(
        "image1d",
        "image1d",
        "image1d.yaml",
        10,
        "images/train",
        ("model.width=32", "model.depth=1", "model.num_latent_tokens=8", "model.image_size=32"),
    ),
    "audio": Recipe("audio", "audio", "audio_rvq.yaml", 60, "audio-train", ("model.base_channels=4",)),
}


def train(recipe: Recipe, out: Path, minutes: float, data_source: str | None, extra: list[str]) -> Trainer:
    overrides = [
        f"output_dir={out / recipe.name / 'run'}",
        f"train.max_minutes={minutes}",
        "train.max_steps=1000000",  # the clock ends the run
        "train.checkpoint_every=1000000",
        "train.image_every=1000000",
        *([f"data.source={data_source}"] if data_source else []),
        *extra,
    ]
    trainer = Trainer(load_run_config(str(CONFIGS / recipe.config), overrides))
    trainer.fit()
    return trainer


def run_image(recipe, trainer: Trainer, out: Path, photos, minutes: float, peer: bool = True) -> dict:
    tokenizer = trainer.inference_model.eval()
    monitor = CodebookMonitor(tokenizer.codebook_sizes, tokenizer.num_codebooks)
    methods = [tokenizer_method("mmtok", tokenizer, monitor)]
    peer_steps = None
    if peer:
        peer_model = vqgan(tokenizer.config, math.prod(tokenizer.codebook_sizes))
        peer_steps = train_peer_like(peer_model, vqgan_loss, trainer, minutes, "VQGAN").steps
        methods.append(
            Method(
                "VQGAN",
                lambda x: vqgan_reconstruct(peer_model, x),
                lambda x: vqgan_bits_per_pixel(peer_model, *x.shape[-2:]),
            )
        )
    results, pictures = compare(methods, photos, tokenizer.input_spec(), codecs_at="mmtok")
    grid = out / recipe.name / "grid.png"
    save_grid(pictures, ["original", *results], grid)
    return {
        "steps": trainer.step,
        "peer_steps": peer_steps,
        "train_window_use": [h["utilization"] for h in trainer.last_health],
        "heldout_use": [h["utilization"] for h in monitor.compute()],
        "methods": results,
        "grid": str(grid),
    }


def run_image1d(recipe, trainer: Trainer, out: Path, photos, reference_2d) -> dict:
    tokenizer = trainer.inference_model.eval()
    sweep = sweep_num_tokens(tokenizer, photos)
    sweep.pop("positions")
    result = {"steps": trainer.step, "train_window_use": [h["utilization"] for h in trainer.last_health], **sweep}
    if reference_2d is not None:  # the 2-D tokenizer on the same crops: its bits equal k = K's
        x = tokenizer.input_spec().prepare([image for _, image in photos]).tensor
        method = tokenizer_method("2-D", reference_2d)
        with torch.no_grad():
            result["reference_2d"] = {
                "psnr": float(psnr(method.reconstruct(x).clamp(-1, 1), x).mean()),
                "bits": method.bits_per_pixel(x) * x.shape[-1] * x.shape[-2],
            }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data_cache", help="what scripts/fetch_data.sh fetched")
    parser.add_argument("--out", default="runs/quality")
    parser.add_argument("--recipes", nargs="+", choices=sorted(RECIPES), default=list(RECIPES))
    parser.add_argument("--minutes", type=float, default=None, help="every recipe's budget (default: its own)")
    parser.add_argument("--smoke", action="store_true", help="tiny models, seconds each, generated audio")
    parser.add_argument("--no-peers", action="store_true", help="skip the peers (VQGAN, DAC): saves their budget")
    parser.add_argument("overrides", nargs="*", help="config overrides for every recipe")
    args = parser.parse_args()
    out, data = Path(args.out), Path(args.data)
    photos = heldout_photos(None if args.smoke else data / "images" / "heldout")
    report: dict = {}
    trained_2d = None
    for name in args.recipes:
        recipe = RECIPES[name]
        minutes = 0.05 if args.smoke else (args.minutes or recipe.minutes)
        extra = [*(recipe.smoke if args.smoke else ()), *args.overrides]
        if recipe.kind == "audio":
            from quality_audio import run_audio

            report[name] = run_audio(
                recipe, data, out, minutes, extra, smoke=args.smoke, train=train, peer=not args.no_peers
            )
            continue
        source = None if recipe.data is None or args.smoke else str(data / recipe.data)
        trainer = train(recipe, out, minutes, source, extra)
        if recipe.kind == "image":
            report[name] = run_image(recipe, trainer, out, photos, minutes, peer=not args.no_peers)
            trained_2d = trained_2d or trainer.inference_model.eval()
        else:
            report[name] = run_image1d(recipe, trainer, out, photos, trained_2d)
        report[name]["minutes"] = minutes
    out.mkdir(parents=True, exist_ok=True)
    (out / "quality.json").write_text(json.dumps(report, indent=2))
    from quality_table import print_tables

    print_tables(report)
    print(f"\nwrote {out / 'quality.json'}")


if __name__ == "__main__":
    main()
