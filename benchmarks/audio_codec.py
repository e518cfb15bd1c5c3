"""The audio codec against Opus on real speech and music it never trained on.

Trains configs/audio_rvq.yaml (or --config) on the speech and music `scripts/fetch_data.sh`
fetched, minus held-out clips (the pocketsphinx LibriVox clips and 3 music files), for a time
budget; then reports mel distance, STOI, wide-band PESQ and SI-SDR at 2, 4 and 8 codebooks
(1.5, 3 and 6 kbps at 75 Hz x 1024 codes) next to Opus at 6 and 12 kbps, the codebook health,
and encode/decode real-time factors on this machine.

    PYTHON=python scripts/fetch_data.sh data_cache
    python benchmarks/audio_codec.py --data data_cache --out runs/bench-audio --max-steps 400
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
from opus import opus_roundtrip

from mmtok.data.audio_io import load_audio
from mmtok.data.sources import AUDIO_EXTENSIONS
from mmtok.eval.audio import bitrate_kbps, mel_distance, pesq_wb, real_time_factor, si_sdr, stoi
from mmtok.train.config import load_run_config
from mmtok.train.trainer import Trainer

CONFIG = Path(__file__).parents[1] / "configs" / "audio_rvq.yaml"
HELD_OUT_MUSIC = 3


def split_clips(data: Path, train_folder: Path) -> list[Path]:
    """Links every training clip into train_folder and returns the held-out clips."""
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


def scores(reference: torch.Tensor, decoded: torch.Tensor, rate: int) -> dict:
    row = {"mel": float(mel_distance(decoded, reference, rate)), "si_sdr": float(si_sdr(decoded, reference))}
    row["stoi"] = float(stoi(reference, decoded, rate, on_error="nan"))
    row["pesq"] = float(pesq_wb(reference, decoded, rate, on_error="nan"))
    return row


def mean_rows(rows: list[dict]) -> dict:
    keys = rows[0].keys()
    return {
        k: statistics.fmean(r[k] for r in rows if r[k] == r[k]) if any(r[k] == r[k] for r in rows) else float("nan")
        for k in keys
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data_cache")
    parser.add_argument("--out", default="runs/bench-audio")
    parser.add_argument("--config", default=str(CONFIG))
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--clip-seconds", type=float, default=4.0, help="held-out clips are cut to this length")
    parser.add_argument("--weights", choices=("ema", "raw"), default="ema", help="which weights to evaluate")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    out, data = Path(args.out), Path(args.data)
    held = split_clips(data, out / "train-clips")
    overrides = [f"output_dir={out / 'run'}", f"data.source={out / 'train-clips'}", *args.overrides]
    if args.max_steps is not None:
        overrides.append(f"train.max_steps={args.max_steps}")
    config = load_run_config(args.config, overrides)
    trainer = Trainer(config, resume=True)
    trainer.fit()
    model = (trainer.inference_model if args.weights == "ema" else trainer.unwrapped).eval()
    rate, q = model.config.sample_rate, model.quantizer
    depths = [n for n in (2, 4, 8) if n <= q.num_codebooks]

    results = {f"mmtok {n} codebooks": [] for n in depths}
    results.update({f"Opus {k} kbps": [] for k in (6, 12)})
    kbps = {f"mmtok {n} codebooks": bitrate_kbps(model.config.frame_rate, n, q.codebook_sizes[:n]) for n in depths}
    encode_rtf, decode_rtf = [], []
    for path in held:
        wave, _ = load_audio(path, sample_rate=rate)
        wave = wave[:, : int(args.clip_seconds * rate)]
        x = wave[None]
        with torch.no_grad():
            ids = model.encode(x)
            for n in depths:
                decoded = model.decode(ids[..., :n])[0].clamp(-1, 1)
                results[f"mmtok {n} codebooks"].append(scores(wave[:, : decoded.shape[-1]], decoded, rate))
        seconds = x.shape[-1] / rate
        encode_rtf.append(real_time_factor(lambda x=x: model.encode(x), seconds))
        decode_rtf.append(real_time_factor(lambda ids=ids: model.decode(ids), seconds))
        for k in (6, 12):
            decoded, actual = opus_roundtrip(wave, rate, k, application="audio" if "music" in path.parts else "voip")
            results[f"Opus {k} kbps"].append(scores(wave, decoded, rate))
            kbps.setdefault(f"Opus {k} kbps", actual)

    print(
        f"\naudio codec after {trainer.step} steps ({args.weights} weights), {len(held)} held-out clips "
        f"({args.clip_seconds:.0f} s each)"
    )
    print("| codec | kbps | mel distance | STOI | PESQ-WB | SI-SDR dB |\n|---|---|---|---|---|---|")
    summary = {}
    for name, rows in results.items():
        m = mean_rows(rows)
        summary[name] = {"kbps": kbps[name], **m}
        print(f"| {name} | {kbps[name]:.2f} | {m['mel']:.3f} | {m['stoi']:.3f} | {m['pesq']:.2f} | {m['si_sdr']:.2f} |")
    print(
        f"\nencode real-time factor {statistics.median(encode_rtf):.4f}, decode {statistics.median(decode_rtf):.4f} "
        f"({torch.get_num_threads()} CPU threads)"
    )
    for index, stats in enumerate(trainer.last_health):
        print(f"codebook {index}: utilization {stats['utilization']:.3f}, perplexity {stats['perplexity']:.1f}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "audio_codec.json").write_text(
        json.dumps({"steps": trainer.step, "summary": summary, "health": trainer.last_health}, indent=2)
    )


if __name__ == "__main__":
    main()
