"""The audio recipe after its budget, next to DAC's recipe (same data, same time) and Opus, on
held-out speech and music: a table per number of codebooks, spectrogram pairs and decoded files."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import numpy as np
import soundfile
import torch
from peers import DacLoss, dac, dac_reconstruct, train_peer_like

from mmtok.data.audio import AUDIO_EXTENSIONS
from mmtok.data.audio_io import load_audio
from mmtok.eval.audio import bitrate_kbps, mel_distance, pesq_wb, si_sdr, stoi
from mmtok.eval.codecs import opus_roundtrip

CLIP_SECONDS = 4.0
HELD_OUT_MUSIC = 3
OPUS_KBPS = (6, 12)
PICTURED_CLIPS = 2  # spectrograms and files for the first speech clip and the first music clip


def split_clips(data: Path, train_folder: Path) -> list[Path]:
    """Links every training clip of `data` into train_folder; returns the held-out clips: the
    pocketsphinx LibriVox speech and the first HELD_OUT_MUSIC music files, held out whole."""
    speech_held = sorted((data / "speech" / "pocketsphinx-testdata").rglob("*.wav"))
    music = sorted(p for p in (data / "music").rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    held = speech_held + music[:HELD_OUT_MUSIC]
    train_folder.mkdir(parents=True, exist_ok=True)
    for kind in ("speech", "music"):
        for path in sorted(p for p in (data / kind).rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS):
            link = train_folder / "_".join(path.relative_to(data).parts)
            if path not in held and not link.exists():
                link.symlink_to(path.resolve())
    return held


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


def _scores(reference: torch.Tensor, decoded: torch.Tensor, rate: int) -> dict:
    decoded = decoded[..., : reference.shape[-1]]
    reference = reference[..., : decoded.shape[-1]]
    return {
        "mel": float(mel_distance(decoded, reference, rate)),
        "si_sdr": float(si_sdr(decoded, reference)),
        "stoi": float(stoi(reference, decoded, rate, on_error="nan")),
        "pesq": float(pesq_wb(reference, decoded, rate, on_error="nan")),
    }


def _mean(rows: list[dict]) -> dict:
    return {k: statistics.fmean([r[k] for r in rows if not math.isnan(r[k])] or [math.nan]) for k in rows[0]}


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
    rate, quantizer = model.config.sample_rate, model.quantizer
    peer_run = train_peer_like(dac(model.config), DacLoss(rate), trainer, minutes, "DAC") if peer else None
    systems = ("mmtok", "DAC") if peer else ("mmtok",)
    depths = [n for n in (2, 4, 8) if n <= quantizer.num_codebooks]
    kbps = {
        f"{who} {n} codebooks": bitrate_kbps(model.config.frame_rate, n, quantizer.codebook_sizes[:n])
        for n in depths
        for who in systems
    }
    rows: dict[str, list[dict]] = {name: [] for name in kbps}
    rows.update({f"Opus {k} kbps": [] for k in OPUS_KBPS})
    pictured = []
    for path in held:
        wave, _ = load_audio(path, sample_rate=rate)
        x = model.input_spec().prepare_wave(wave[:, : int(CLIP_SECONDS * rate)], rate).tensor
        decoded = {}
        with torch.no_grad():
            ids = model.encode(x)
            for n in depths:
                decoded[f"mmtok {n} codebooks"] = model.decode(ids[..., :n]).clamp(-1, 1)
                if peer_run is not None:
                    decoded[f"DAC {n} codebooks"] = dac_reconstruct(peer_run.model, x, n)
        music = "music" in path.parts
        for k in OPUS_KBPS:
            wave_opus, actual = opus_roundtrip(x[0], rate, k, application="audio" if music else "voip")
            decoded[f"Opus {k} kbps"] = wave_opus[None]
            kbps[f"Opus {k} kbps"] = actual
        for name, y in decoded.items():
            rows[name].append(_scores(x[0], y[0], rate))
        if len(pictured) < PICTURED_CLIPS and (not pictured or music != pictured[0][2]):
            pictured.append((path.stem, {"original": x, **decoded}, music))
    pictures = [_save_clip(folder, stem, waves, rate, depths[-1]) for stem, waves, _ in pictured]
    return {
        "steps": trainer.step,
        "peer_steps": peer_run.steps if peer_run is not None else None,
        "minutes": minutes,
        "clips": len(held),
        "train_window_use": [h["utilization"] for h in trainer.last_health],
        "methods": {name: {"kbps": kbps[name], "mean": _mean(r)} for name, r in rows.items()},
        "pictures": pictures,
    }


def _save_clip(folder: Path, stem: str, waves: dict, rate: int, depth: int) -> dict:
    """The clip's original and decoded versions as WAV files, and their spectrograms in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [
        name
        for name in ("original", f"mmtok {depth} codebooks", f"DAC {depth} codebooks", "Opus 6 kbps")
        if name in waves
    ]
    files = {}
    figure, axes = plt.subplots(len(shown), 1, figsize=(8, 2.0 * len(shown)), sharex=True)
    for axis, name in zip(axes, shown):
        wave = waves[name][0, 0].numpy()
        file = folder / "audio" / f"{stem}-{name.replace(' ', '_')}.wav"
        file.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(file, wave, rate)
        files[name] = str(file)
        axis.specgram(wave, NFFT=512, Fs=rate, noverlap=384, cmap="magma", vmin=-120)
        axis.set_ylabel("Hz")
        axis.set_title(name, fontsize=9, loc="left")
    axes[-1].set_xlabel("seconds")
    figure.tight_layout()
    png = folder / f"spectrogram-{stem}.png"
    figure.savefig(png, dpi=80)
    plt.close(figure)
    return {"clip": stem, "png": str(png), "files": files}
