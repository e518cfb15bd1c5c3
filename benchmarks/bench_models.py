"""`mmtok bench` rows for the tokenizer families: encode and decode throughput at a realistic input size (fp32 and
bf16, eager and torch.compile, FLOP/s against the device's peak), and one training step of each recipe."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.resources import files

import numpy as np
import soundfile as sf
import torch
import yaml
from bench_core import (
    BenchContext,
    Row,
    another_busy_process,
    autocast,
    counted_flops,
    median_seconds,
    rate,
    times,
    verdict,
)
from tokenize_shards import write_images

from mmtok.config import load_yaml
from mmtok.data.eeg_montage import POSITION_VALUES, channel_positions, montage_positions, pack_eeg
from mmtok.data.video_io import write_video
from mmtok.models import build_tokenizer


def electrode_names(count: int) -> list[str]:
    return list(montage_positions())[:count]


# What differs per family, as functions each case names (no switch on the family's name).
def one_each(shape: tuple[int, ...], model: dict) -> float:
    return 1.0


def seconds_of_audio(shape: tuple[int, ...], model: dict) -> float:
    return shape[-1] / model["sample_rate"]


def seconds_of_eeg(shape: tuple[int, ...], model: dict) -> float:
    return (shape[-1] - POSITION_VALUES) / model["sample_rate"]


def frames_of(shape: tuple[int, ...], model: dict) -> float:
    return shape[1]


def uniform_batch(shape: tuple[int, ...], batch: int, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(batch, *shape, generator=generator) * 2 - 1


def eeg_batch(shape: tuple[int, ...], batch: int, generator: torch.Generator) -> torch.Tensor:
    channels, samples = shape[0], shape[1] - POSITION_VALUES
    positions = torch.as_tensor(channel_positions(electrode_names(channels)), dtype=torch.float32)
    signal = torch.randn(batch, channels, samples, generator=generator) * 0.5
    return torch.stack([pack_eeg(s, positions) for s in signal])


def image_files(folder, smoke: bool, rng) -> None:
    write_images(folder, 8, 64 if smoke else 256)


def audio_files(folder, smoke: bool, rng) -> None:
    for i in range(4):
        sf.write(folder / f"clip{i}.wav", (rng.normal(0, 0.1, 24_000 * 3)).astype(np.float32), 24_000)


def video_files(folder, smoke: bool, rng) -> None:
    for i in range(2):
        frames = rng.integers(0, 256, (9 if smoke else 25, 64 if smoke else 128, 80 if smoke else 160, 3))
        write_video(folder / f"clip{i}.mp4", frames.astype(np.uint8), 25.0)


def eeg_files(folder, smoke: bool, rng) -> None:
    for i in range(3):
        data = rng.normal(0, 20, (16, 200 * 30))
        np.savez(folder / f"rec{i}.npz", data=data, channel_names=electrode_names(16), sample_rate=200)


@dataclass(frozen=True)
class FamilyCase:
    family: str
    recipe: str  # the recipe in mmtok.configs whose model is measured
    input_shape: tuple[int, ...]  # one input of realistic size; `smoke_shape` for --smoke
    smoke_shape: tuple[int, ...]
    batch: dict[str, int]  # per device type
    unit: str  # what the throughput counts
    amount: Callable[[tuple[int, ...], dict], float]  # units in one input of a shape (given the model config)
    training_amount: Callable[[dict, dict], float]  # units in one training example (data, model config)
    write_data: Callable  # (folder, smoke, rng): a few synthetic training files of the family's kind
    example_batch: Callable = uniform_batch  # (shape, batch, generator) -> a batch in the model's layout
    smoke_data: dict = field(default_factory=dict)  # training data overrides that make --smoke's step small


def _per_crop(data: dict, model: dict) -> float:
    return 1.0


CASES = [
    FamilyCase("image", "quickstart.yaml", (3, 256, 256), (3, 32, 32), {"cpu": 8, "cuda": 64}, "images",
               one_each, _per_crop, image_files, smoke_data={"size": 32}),
    # The 1-D recipe's linear path maps the whole crop to the tokens, so it is measured at its own 64 px.
    FamilyCase("image1d", "image1d.yaml", (3, 64, 64), (3, 64, 64), {"cpu": 32, "cuda": 256}, "images",
               one_each, _per_crop, image_files),
    FamilyCase("audio", "audio_rvq.yaml", (1, 240_000), (1, 2_400), {"cpu": 4, "cuda": 32}, "s of audio",
               seconds_of_audio, lambda data, model: data["segment_seconds"], audio_files,
               smoke_data={"segment_seconds": 0.1}),
    FamilyCase("video", "video.yaml", (3, 17, 128, 128), (3, 5, 32, 32), {"cpu": 2, "cuda": 8}, "frames",
               frames_of, lambda data, model: data["frames"], video_files, smoke_data={"frames": 5, "size": 32}),
    FamilyCase("eeg", "eeg.yaml", (64, 2_003), (4, 403), {"cpu": 8, "cuda": 64}, "s of EEG (all channels)",
               seconds_of_eeg, lambda data, model: data["segment_patches"] * model["patch_size"] / model["sample_rate"],
               eeg_files, eeg_batch, smoke_data={"segment_patches": 1}),
]  # fmt: skip
PRECISIONS = ("fp32", "bf16")


def case_of(family: str) -> FamilyCase:
    return next(case for case in CASES if case.family == family)


def example_batch(case: FamilyCase, shape: tuple[int, ...], batch: int, device: torch.device) -> torch.Tensor:
    """A seeded random batch of `shape` inputs in the family's layout, on `device`."""
    return case.example_batch(shape, batch, torch.Generator().manual_seed(0)).to(device)


def recipe(case: FamilyCase) -> dict:
    return load_yaml(files("mmtok.configs") / case.recipe)


@dataclass
class Prepared:
    """A family's recipe model and one batch of its realistic (or --smoke) input."""

    model: torch.nn.Module
    shape: tuple[int, ...]
    x: torch.Tensor
    amount: float  # units (images, seconds, frames) in the batch


def prepared(ctx: BenchContext, case: FamilyCase) -> Prepared:
    config = recipe(case)
    model = build_tokenizer(config["model"]).to(ctx.device).eval()
    shape = case.smoke_shape if ctx.smoke else case.input_shape
    batch = 1 if ctx.smoke else case.batch["cuda" if ctx.on_cuda else "cpu"]
    x = example_batch(case, shape, batch, ctx.device)
    return Prepared(model, shape, x, case.amount(shape, config["model"]) * batch)


def _throughput_rows(ctx: BenchContext, name: str) -> list[Row]:
    rows = []
    for case in CASES:
        setup = prepared(ctx, case)
        with torch.inference_mode():
            ids = setup.model.encode(setup.x)
        for precision in PRECISIONS:
            for compiled in (False, True) if ctx.compile else (False,):
                rows.append(_measure(ctx, name, case, setup, ids, precision, compiled))
    return rows


def _measure(ctx, name, case, setup: Prepared, ids, precision, compiled) -> Row:
    x, shape, amount = setup.x, setup.shape, setup.amount
    fn = setup.model.encode if name == "encode" else setup.model.decode
    arg = x if name == "encode" else ids
    run = torch.compile(fn) if compiled else fn

    def op():
        with torch.inference_mode(), autocast(ctx.device, precision):
            return run(arg)

    with torch.inference_mode(), autocast(ctx.device, precision):
        flops = counted_flops(lambda: fn(arg))
    seconds = median_seconds(op, ctx.device, ctx.repeats)
    achieved = flops / seconds
    peak, peak_name = ctx.peak_flops(precision)
    share = f"{achieved / peak:.1%} of the {peak_name}" if peak else "peak unknown"
    label = f"{case.family} {len(x)} × {'×'.join(map(str, shape))}, {precision}, {'compiled' if compiled else 'eager'}"
    row = Row(
        name,
        label,
        f"{rate(amount, seconds)} {case.unit}/s",
        note=f"{flops / len(x) / 1e9:,.2f} GFLOP per input; {achieved / 1e12:.3f} TFLOP/s = {share}",
        values={
            "family": case.family,
            "precision": precision,
            "compiled": compiled,
            "batch": len(x),
            "seconds": seconds,
            "flops": flops,
            "units_per_s": amount / seconds,
            "mfu": achieved / peak if peak else None,
        },
    )
    floor = {"image": 0.40, "audio": 0.25}.get(case.family)
    if name == "encode" and ctx.on_cuda and precision == "bf16" and compiled and floor and peak:
        row.target, row.verdict = f"MFU ≥ {floor:.0%}", verdict(achieved / peak >= floor)
    return row


def encode_rows(ctx: BenchContext) -> list[Row]:
    return _throughput_rows(ctx, "encode")


def decode_rows(ctx: BenchContext) -> list[Row]:
    return _throughput_rows(ctx, "decode")


def encode_shared_rows(ctx: BenchContext) -> list[Row]:
    """Image and audio encode alone and beside another busy process, in this process: what sharing costs."""
    rows = []
    for case in map(case_of, ("image", "audio")):
        setup = prepared(ctx, case)
        amount, shape = setup.amount, setup.shape

        def op(setup=setup):
            with torch.inference_mode():
                return setup.model.encode(setup.x)

        quiet = median_seconds(op, ctx.device, ctx.repeats)
        with another_busy_process():
            shared = median_seconds(op, ctx.device, ctx.repeats)
        rows.append(
            Row(
                "encode_shared",
                f"{case.family} {len(setup.x)} × {'×'.join(map(str, shape))}, fp32, another busy process running",
                f"{rate(amount, shared)} {case.unit}/s",
                ratio=f"{times(quiet, shared)} of its speed alone ({rate(amount, quiet)} {case.unit}/s)",
                note=f"{torch.get_num_threads()} intra-op threads",
                values={"family": case.family, "quiet_seconds": quiet, "shared_seconds": shared},
            )
        )
    return rows


# -- one training step per recipe ------------------------------------------------------------------
def train_step_rows(ctx: BenchContext) -> list[Row]:
    from mmtok.train.config import load_run_config
    from mmtok.train.trainer import Trainer

    logging.getLogger("mmtok.train").setLevel(logging.WARNING)
    rows = []
    for case in CASES:
        config = recipe(case)
        data_dir = ctx.workdir / "train_data" / case.family
        data_dir.mkdir(parents=True, exist_ok=True)
        case.write_data(data_dir, ctx.smoke, np.random.default_rng(0))
        config["data"]["source"] = str(data_dir)
        config["data"].update(case.smoke_data if ctx.smoke else {})
        if config["model"].get("init_from"):  # a step costs the same from random weights
            config["model"]["init_from"] = None
        if config["data"].get("stills") == "sample-images":  # photos mixed into video clips, written here
            config["data"]["cache_dir"] = str(ctx.workdir / "sample-images")
        config["output_dir"] = str(ctx.workdir / "train_runs" / case.family)
        steps = 2 if ctx.smoke else 1 + ctx.repeats
        config["train"].update(
            max_steps=steps,
            max_minutes=None,
            checkpoint_every=10**6,
            sample_every=10**6,
            health_every=10**6,
            **({"batch_size": 1} if ctx.smoke else {}),
        )
        path = ctx.workdir / f"train_{case.family}.yaml"
        path.write_text(yaml.safe_dump(config))
        run = load_run_config(path)
        examples_per_s = Trainer(run).fit()["items_per_s"]  # the last step: after the warm-up ones
        per_example = case.training_amount(config["data"], config["model"])
        rows.append(
            Row(
                "train_step",
                f"{case.family} ({case.recipe}), batch {run.train.batch_size}",
                f"{rate(examples_per_s * per_example, 1.0)} {case.unit}/s",
                note=f"{run.train.batch_size / examples_per_s:.2f} s per step, data loading included; "
                f"{_gan_phase(run.loss.gan_start_step)}",
                values={
                    "family": case.family,
                    "examples_per_s": examples_per_s,
                    "units_per_s": examples_per_s * per_example,
                },
            )
        )
    return rows


def _gan_phase(start_step: int) -> str:
    if start_step < 0:
        return "no GAN in this recipe"
    return "GAN on" if start_step == 0 else f"before the GAN phase (from step {start_step:,})"
