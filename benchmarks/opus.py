"""Opus at low bitrates, the codec baseline the audio tokenizer is compared with, on `mmtok eval`'s
audio suite: libopus through PyAV (mmtok.eval.codecs.opus.opus_roundtrip; no system ffmpeg), scored
with the harness's metrics (mel and STFT distance, SI-SDR, STOI, wide-band PESQ, DNSMOS, speaker
similarity). Prints a Markdown table per clip and the means per bitrate:

    python benchmarks/opus.py data_cache/speech/pocketsphinx-testdata [--clips 5] [--kbps 6 12]

(`scripts/fetch_data.sh` fetches that folder.) The actual bitrate comes from the size of the Ogg
stream, container overhead included, over the clip's duration.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mmtok.data.audio import AUDIO_EXTENSIONS
from mmtok.data.audio_io import load_audio
from mmtok.data.sources import FolderSource
from mmtok.eval.aggregate import summarise
from mmtok.eval.codecs.baselines import audio_curve
from mmtok.eval.suites.audio import AudioSuite


def speech_clips(folder: Path, count: int) -> list[Path]:
    """The first ``count`` audio files under ``folder``, sorted by path."""
    files = FolderSource(folder, AUDIO_EXTENSIONS).paths
    if not files:
        raise SystemExit(f"no audio files under {folder}; run scripts/fetch_data.sh first")
    return files[:count]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder of speech clips (searched recursively)")
    parser.add_argument("--clips", type=int, default=5, help="how many clips (the first, sorted by path)")
    parser.add_argument("--kbps", type=float, nargs="+", default=[6, 12], help="target bitrates")
    parser.add_argument("--sample-rate", type=int, default=16_000, help="clips are resampled to this rate")
    parser.add_argument("--application", default="voip", choices=["voip", "audio", "lowdelay"])
    args = parser.parse_args(argv)

    suite = AudioSuite()
    columns = ["rate", *suite.metrics]
    print("| clip | seconds | target kbps | " + " | ".join(columns) + " |")
    print("|---|---:|---:|" + "---:|" * len(columns))
    results: dict[float, list[dict[str, float]]] = {kbps: [] for kbps in args.kbps}
    for path in speech_clips(args.folder, args.clips):
        reference, rate = load_audio(path, sample_rate=args.sample_rate)
        info = {"sample_rate": rate}
        for kbps, coded in zip(args.kbps, audio_curve(reference[None], rate, args.kbps, args.application)):
            row = {"rate": coded.rate, **suite.scores(reference[None], coded.decoded, info)}
            results[kbps].append(row)
            cells = " | ".join(f"{row[c]:.2f}" for c in columns)
            print(f"| {path.name} | {reference.shape[-1] / rate:.1f} | {kbps:g} | {cells} |")
    for kbps, rows in results.items():
        means = summarise(rows, columns)
        print(f"| **mean** | | {kbps:g} | " + " | ".join(f"**{means[c]['mean']:.2f}**" for c in columns) + " |")


if __name__ == "__main__":
    main()
