"""The held-out audio of the audio benchmarks (benchmarks/audio_codec.py, benchmarks/quality.py):
the pocketsphinx LibriVox speech and the first HELD_OUT_MUSIC music files are held out whole, every
other clip is linked into the training folder, and the held-out clips are written at the codec's
rate, cut to a length, as the WAV files `mmtok eval` reads."""

from __future__ import annotations

from pathlib import Path

import soundfile as sf

from mmtok.data.audio import AUDIO_EXTENSIONS
from mmtok.data.audio_io import load_audio

HELD_OUT_MUSIC = 3


def split_clips(data: Path, train_folder: Path) -> list[Path]:
    """Links every training clip under `data` into train_folder and returns the held-out clips."""
    speech_held = sorted((data / "speech" / "pocketsphinx-testdata").rglob("*.wav"))
    music = sorted(p for p in (data / "music").rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    held = speech_held + music[:HELD_OUT_MUSIC]
    train_folder.mkdir(parents=True, exist_ok=True)
    for path in sorted(p for p in data.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS):
        if path not in held and "wheels" not in path.parts:
            link = train_folder / f"{abs(hash(str(path.relative_to(data)))) % 10**12:012d}{path.suffix.lower()}"
            if not link.exists():
                link.symlink_to(path.resolve())
    return held


def write_clips(paths: list[Path], folder: Path, rate: int, seconds: float) -> tuple[Path, float]:
    """The clips at `rate`, cut to `seconds`, as WAV files in `folder`, with `transcripts.tsv` for
    the speech clips that have a transcript beside them and were not cut (mmtok.eval.metrics.transcripts:
    `mmtok eval` then scores PocketSphinx's word error rate); returns the folder and the seconds of
    audio it holds."""
    from mmtok.eval.metrics.transcripts import read_transcripts

    folder.mkdir(parents=True, exist_ok=True)
    known = {}
    for parent in sorted({path.parent for path in paths}):
        known.update(read_transcripts(parent))
    total, rows = 0.0, []
    for index, path in enumerate(paths):
        wave, _ = load_audio(path, sample_rate=rate)
        whole = wave.shape[-1] <= int(seconds * rate)
        wave = wave[:, : int(seconds * rate)]
        stem = f"{index:03d}_{path.stem}"
        sf.write(folder / f"{stem}.wav", wave.T.numpy(), rate)
        if whole and path.stem in known:
            rows.append(f"{stem}\t{known[path.stem]}")
        total += wave.shape[-1] / rate
    if rows:
        (folder / "transcripts.tsv").write_text("\n".join(rows) + "\n")
    return folder, total
