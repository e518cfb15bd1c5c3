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

Everything is scored by `mmtok eval` (mmtok.eval.harness), each recipe's report folder under
OUT/<recipe>/eval. Images are held-out colour photos (the quickstart's held-out chelsea, rocket and
china plus data_cache/images/heldout) against the taming VQGAN (diffusers.VQModel) and JPEG, WebP
and AVIF at the lowest quality whose bits reach the tokenizer's; audio is held-out speech and music
against DAC (transformers' DacModel) and Opus at their rate and along its bitrate curve. Budgets can
be scaled with --minutes; --smoke runs tiny models for seconds each on generated data (the test
suite runs it).

    PYTHON=python scripts/fetch_data.sh data_cache
    OMP_NUM_THREADS=2 python benchmarks/quality.py --data data_cache --out runs/quality [--recipes quickstart image]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
from peers import train_peer_like, vqgan, vqgan_loss, vqgan_system

from mmtok.data.image_io import decode_image
from mmtok.data.sample_images import DEFAULT_HELD_OUT, sample_images
from mmtok.eval.harness import EvalOptions, evaluate
from mmtok.eval.systems import TokenizerSystem
from mmtok.train.config import load_run_config
from mmtok.train.trainer import Trainer

CONFIGS = Path(__file__).parents[1] / "configs"


@dataclasses.dataclass
class Recipe:
    name: str
    run: str  # which of the runners below trains and scores it: "run_image", "run_image1d", "run_audio"
    config: str
    minutes: float
    data: str | None  # the training data below --data; None: the config's own source
    smoke: tuple[str, ...] = ()  # overrides that make the model tiny for --smoke


@dataclasses.dataclass
class Context:
    """What every runner is given: the command line's choices and what earlier recipes trained."""

    out: Path
    data: Path
    photos: list
    smoke: bool
    peer: bool
    trained_2d: object = None  # the first 2-D tokenizer trained, for the 1-D recipe to stand beside


TINY_IMAGE = ("model.base_channels=8", "model.channel_multipliers=[1,2,2,2]", "model.image_size=32")
RECIPES = {
    "quickstart": Recipe("quickstart", "run_image", "quickstart.yaml", 9, None, TINY_IMAGE),
    "image": Recipe("image", "run_image", "quickstart.yaml", 60, "images/train", TINY_IMAGE),
    "image1d": Recipe(
        "image1d",
        "run_image1d",
        "image1d.yaml",
        10,
        "images/train",
        ("model.width=32", "model.depth=1", "model.num_latent_tokens=8", "model.image_size=32"),
    ),
    "audio": Recipe("audio", "run_audio", "audio_rvq.yaml", 60, "audio-train", ("model.base_channels=4",)),
}


def train(recipe: Recipe, out: Path, minutes: float, data_source: str | None, extra: list[str]) -> Trainer:
    overrides = [
        f"output_dir={out / recipe.name / 'run'}",
        f"train.max_minutes={minutes}",
        "train.max_steps=1000000",  # the clock ends the run
        "train.checkpoint_every=1000000",
        "train.sample_every=1000000",
        *([f"data.source={data_source}"] if data_source else []),
        *extra,
    ]
    trainer = Trainer(load_run_config(str(CONFIGS / recipe.config), overrides))
    trainer.fit()
    return trainer


SIZE = 256  # photos are scored on centred crops of at most this per side


def heldout_photos(folder: Path | None) -> list[tuple[str, np.ndarray]]:
    """The colour photos the quickstart's split keeps out of training (chelsea, rocket, china), plus
    every PNG/JPEG in `folder` (data_cache/images/heldout, from scripts/fetch_data.sh) if there is one."""
    photos = sample_images(held_out=DEFAULT_HELD_OUT)[1]
    if folder is not None and folder.is_dir():
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        photos += [(p.stem, decode_image(p)) for p in files]
    return photos


def _health(trainer: Trainer, report: dict) -> dict:
    return {
        "steps": trainer.step,
        "train_window_use": [h["utilization"] for h in trainer.last_health],
        "heldout_use": [h["utilization"] for h in report["tokenizers"][0]["codebooks"]],
    }


def _trained(recipe: Recipe, context: Context, minutes: float, extra: list[str]) -> Trainer:
    source = None if recipe.data is None or context.smoke else str(context.data / recipe.data)
    return train(recipe, context.out, minutes, source, extra)


def run_image(recipe: Recipe, context: Context, minutes: float, extra: list[str]) -> dict:
    trainer = _trained(recipe, context, minutes, extra)
    tokenizer = trainer.inference_model.eval()
    context.trained_2d = context.trained_2d or tokenizer
    out, photos = context.out, context.photos
    systems = [TokenizerSystem.from_model("mmtok", tokenizer)]
    peer_steps = None
    if context.peer:
        peer_model = vqgan(tokenizer.config, math.prod(tokenizer.codebook_sizes))
        peer_steps = train_peer_like(peer_model, vqgan_loss, trainer, minutes, "VQGAN").steps
        systems.append(vqgan_system(peer_model, tokenizer.input_spec()))
    folder = out / recipe.name / "eval"
    options = EvalOptions(crop_size=SIZE, sweep=False, media_items=len(photos))
    report = evaluate(systems, photos, folder, options, data="held-out photos")
    return {
        **_health(trainer, report),
        "peer_steps": peer_steps,
        "report": str(folder / "report.json"),
        "grid": str(folder / report["plots"]["grid"]),
    }


def run_image1d(recipe: Recipe, context: Context, minutes: float, extra: list[str]) -> dict:
    """The 1-D tokenizer's sweep over k and, beside it on the same crops, the 2-D tokenizer (whose
    bits equal k = K's in the default configs)."""
    trainer = _trained(recipe, context, minutes, extra)
    tokenizer = trainer.inference_model.eval()
    out, photos = context.out, context.photos
    systems = [TokenizerSystem.from_model("1-D", tokenizer)]
    if context.trained_2d is not None:
        systems.append(TokenizerSystem.from_model("2-D", context.trained_2d))
    folder = out / recipe.name / "eval"
    options = EvalOptions(crop_size=tokenizer.config.image_size, baselines=False, media_items=len(photos))
    report = evaluate(systems, photos, folder, options, data="held-out photos")
    return {**_health(trainer, report), "report": str(folder / "report.json")}


def run_audio(recipe: Recipe, context: Context, minutes: float, extra: list[str]) -> dict:
    from quality_audio import run_audio as audio

    return audio(recipe, context.data, context.out, minutes, extra, smoke=context.smoke, train=train, peer=context.peer)


RUNNERS = {"run_image": run_image, "run_image1d": run_image1d, "run_audio": run_audio}


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
    context = Context(out, data, photos, args.smoke, not args.no_peers)
    report: dict = {}
    for name in args.recipes:
        recipe = RECIPES[name]
        minutes = 0.05 if args.smoke else (args.minutes or recipe.minutes)
        extra = [*(recipe.smoke if args.smoke else ()), *args.overrides]
        report[name] = {**RUNNERS[recipe.run](recipe, context, minutes, extra), "minutes": minutes}
    out.mkdir(parents=True, exist_ok=True)
    (out / "quality.json").write_text(json.dumps(report, indent=2))
    from quality_table import print_tables

    print_tables(report, {name: RECIPES[name].run for name in report})
    print(f"\nwrote {out / 'quality.json'}")


if __name__ == "__main__":
    main()
