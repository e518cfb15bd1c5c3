"""The audio recipe after its budget, next to DAC's recipe (same data, same time) and Opus, on
held-out speech and music, through `mmtok eval` (mmtok.eval.harness): both codecs at 1, 2, 4 and 8
codebooks (their sweeps), Opus at their rate and along its bitrate curve, spectrograms and WAVs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile
from heldout_audio import split_clips, write_clips
from peers import DacLoss, dac, dac_system, train_peer_like

from mmtok.eval.harness import EvalOptions, evaluate, load_items
from mmtok.eval.systems import TokenizerSystem, powers_of_two_through

CLIP_SECONDS = 4.0
PICTURED_CLIPS = 4  # spectrograms and files for the first clips (speech first, then music)


def synthetic_clips(folder: Path, rate: int = 16000) -> list[Path]:
    """For --smoke: chirps and chords as training clips, two more held out; returns the held-out."""
    rng = np.random.default_rng(0)
    paths = []
    for index in range(6):
        t = np.arange(int(2 * rate)) / rate
        f0, f1 = rng.uniform(100, 600), rng.uniform(600, 3000)
        wave = 0.3 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / 4)) + 0.05 * rng.standard_normal(t.size)
        split = "train" if index < 4 else "held"
        path = folder / split / f"clip{index}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(path, wave.astype(np.float32), rate)
        paths.append(path)
    return paths[4:]


def run_audio(
    recipe, data: Path, out: Path, minutes: float, extra: list[str], *, smoke: bool, train, peer: bool = True
) -> dict:
    folder = out / recipe.name
    if smoke:
        held = synthetic_clips(folder / "clips")
        source = folder / "clips" / "train"
        extra = ["model.sample_rate=16000", "model.strides=[2,4,5]", "data.segment_seconds=0.5", *extra]
    else:
        source = folder / "train-clips"
        held = split_clips(data, source)
    trainer = train(recipe, out, minutes, str(source), extra)
    model = trainer.inference_model.eval()
    systems = [TokenizerSystem.from_model("mmtok", model)]
    peer_run = None
    if peer:
        peer_run = train_peer_like(dac(model.config), DacLoss(model.config.sample_rate), trainer, minutes, "DAC")
        depths = powers_of_two_through(peer_run.model.config.n_codebooks)  # the sweep mmtok's codec gets
        systems.append(dac_system(peer_run.model, model.input_spec(), depths))
    clips, _ = write_clips(held, folder / "held-out", model.config.sample_rate, CLIP_SECONDS)
    items = load_items(str(clips), "audio")
    evaluate(systems, items, folder / "eval", EvalOptions(media_items=PICTURED_CLIPS), data=str(clips))
    return {
        "steps": trainer.step,
        "peer_steps": peer_run.steps if peer_run is not None else None,
        "minutes": minutes,
        "clips": len(held),
        "train_window_use": [h["utilization"] for h in trainer.last_health],
        "report": str(folder / "eval" / "report.json"),
    }
