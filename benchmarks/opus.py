"""Opus at low bitrates, the codec baseline the audio tokenizer is compared with.

`opus_roundtrip` encodes a mono clip with libopus through ffmpeg (`apt-get install ffmpeg`) and
decodes it back (libsndfile reads Ogg Opus), at the clip's own sample rate. The CLI scores a few
speech clips at 6 and 12 kbps and prints a Markdown table:

    python benchmarks/opus.py data_cache/speech/pocketsphinx-testdata [--clips 5] [--kbps 6 12]

(`scripts/fetch_data.sh` fetches that folder.) The actual bitrate comes from the size of the Ogg
file, container overhead included, over the clip's duration.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from mmtok.data.audio_io import load_audio
from mmtok.data.sources import AUDIO_EXTENSIONS, FolderSource
from mmtok.eval.audio import mel_distance, pesq_wb, si_sdr, stoi

# Rates libopus takes as input without resampling; other clips are resampled by ffmpeg.
OPUS_INPUT_RATES = (8000, 12000, 16000, 24000, 48000)


def opus_roundtrip(
    wave: torch.Tensor | np.ndarray, sample_rate: int, kbps: float, *, application: str = "voip"
) -> tuple[torch.Tensor, float]:
    """Encode a mono clip ``(samples,)`` or ``(1, samples)`` with Opus at ``kbps`` and decode it.

    ``application`` is libopus' tuning: "voip" for speech, "audio" for music, "lowdelay". Returns
    the decoded waveform ``(1, samples)`` at ``sample_rate``, cut or zero-padded to the input's
    length, and the actual bitrate in kbps of the Ogg Opus file.
    """
    if shutil.which("ffmpeg") is None:
        raise RuntimeError("ffmpeg is not installed (apt-get install -y ffmpeg); it encodes the Opus baseline")
    wave = torch.as_tensor(wave, dtype=torch.float32).reshape(-1)
    with tempfile.TemporaryDirectory() as tmp:
        source, encoded = Path(tmp) / "clip.wav", Path(tmp) / "clip.opus"
        sf.write(source, wave.numpy(), sample_rate, subtype="FLOAT")
        command = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(source)]
        if sample_rate not in OPUS_INPUT_RATES:
            command += ["-ar", "48000"]
        command += ["-c:a", "libopus", "-b:a", f"{kbps}k", "-application", application, str(encoded)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"ffmpeg failed to encode Opus at {kbps} kbps: {result.stderr.strip()}")
        actual_kbps = encoded.stat().st_size * 8 / (wave.numel() / sample_rate) / 1000
        decoded, _ = load_audio(encoded, sample_rate=sample_rate)
    length = wave.numel()
    decoded = torch.nn.functional.pad(decoded[:, :length], (0, max(0, length - decoded.shape[-1])))
    return decoded, actual_kbps


def speech_clips(folder: Path, count: int) -> list[Path]:
    """The first ``count`` audio files under ``folder``, sorted by path."""
    files = FolderSource(folder, AUDIO_EXTENSIONS).paths
    if not files:
        raise SystemExit(f"no audio files under {folder}; run scripts/fetch_data.sh first")
    return files[:count]


def score(reference: torch.Tensor, decoded: torch.Tensor, sample_rate: int) -> dict[str, float]:
    return {
        "mel distance": mel_distance(decoded[0], reference[0], sample_rate),
        "STOI": stoi(reference[0], decoded[0], sample_rate, on_error="nan"),
        "PESQ-WB": pesq_wb(reference[0], decoded[0], sample_rate, on_error="nan"),
        "SI-SDR (dB)": si_sdr(decoded[0], reference[0]),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder of speech clips (searched recursively)")
    parser.add_argument("--clips", type=int, default=5, help="how many clips (the first, sorted by path)")
    parser.add_argument("--kbps", type=float, nargs="+", default=[6, 12], help="target bitrates")
    parser.add_argument("--sample-rate", type=int, default=16_000, help="clips are resampled to this rate")
    parser.add_argument("--application", default="voip", choices=["voip", "audio", "lowdelay"])
    args = parser.parse_args(argv)

    columns = ["actual kbps", "mel distance", "STOI", "PESQ-WB", "SI-SDR (dB)"]
    print("| clip | seconds | target kbps | " + " | ".join(columns) + " |")
    print("|---|---:|---:|" + "---:|" * len(columns))
    results: dict[float, list[dict[str, float]]] = {kbps: [] for kbps in args.kbps}
    for path in speech_clips(args.folder, args.clips):
        reference, rate = load_audio(path, sample_rate=args.sample_rate)
        for kbps in args.kbps:
            decoded, actual = opus_roundtrip(reference, rate, kbps, application=args.application)
            row = {"actual kbps": actual, **score(reference, decoded, rate)}
            results[kbps].append(row)
            cells = " | ".join(f"{row[c]:.2f}" for c in columns)
            print(f"| {path.name} | {reference.shape[-1] / rate:.1f} | {kbps:g} | {cells} |")
    for kbps, rows in results.items():
        means = " | ".join(f"**{statistics.fmean(r[c] for r in rows):.2f}**" for c in columns)
        print(f"| **mean** | | {kbps:g} | {means} |")


if __name__ == "__main__":
    main()
