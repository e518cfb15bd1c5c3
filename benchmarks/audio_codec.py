"""The audio codec against Opus on real speech and music it never trained on.

Trains configs/audio_rvq.yaml (or --config) on the speech and music `scripts/fetch_data.sh`
fetched, minus held-out clips (the pocketsphinx LibriVox clips and 3 music files), for a time
budget; then evaluates the saved codec with `mmtok eval`'s harness on the held-out clips (cut to
--clip-seconds): mel and STFT distance, SI-SDR, STOI, wide-band PESQ, DNSMOS and speaker
similarity at 1, 2, 4 and 8 codebooks (its codebook sweep; 0.75 to 6 kbps at 75 Hz x 1024 codes)
next to Opus (PyAV) at its rate and at 6 to 24 kbps, the codebook health, and encode/decode
real-time factors on this machine. The report folder is written to OUT/report.

    PYTHON=python scripts/fetch_data.sh data_cache
    python benchmarks/audio_codec.py --data data_cache --out runs/bench-audio --max-steps 400
"""

from __future__ import annotations

import argparse
from pathlib import Path

from heldout_audio import split_clips, write_clips

from mmtok.eval.harness import run_eval
from mmtok.eval.report.text import markdown_summary
from mmtok.train.config import load_run_config
from mmtok.train.trainer import Trainer

CONFIG = Path(__file__).parents[1] / "configs" / "audio_rvq.yaml"


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
    model = trainer.inference_model if args.weights == "ema" else trainer.unwrapped
    tokenizer_dir = model.save_pretrained(out / f"tokenizer-{args.weights}")
    clips, seconds = write_clips(held, out / "held-out", model.config.sample_rate, args.clip_seconds)
    report = run_eval([tokenizer_dir], str(clips), out / "report")
    tok = report["tokenizers"][0]
    print(
        f"\naudio codec after {trainer.step} steps ({args.weights} weights), {len(held)} held-out clips "
        f"({args.clip_seconds:.0f} s each)"
    )
    print(markdown_summary(report))
    speed = tok["throughput"]
    print(
        f"\nencode real-time factor {speed['encode_seconds'] / seconds:.4f}, "
        f"decode {speed['decode_seconds'] / seconds:.4f} ({speed['threads']} CPU threads)"
    )
    for index, stats in enumerate(trainer.last_health):
        print(f"codebook {index}: utilization {stats['utilization']:.3f}, perplexity {stats['perplexity']:.1f}")
    print(f"report: {out / 'report' / 'index.html'}")


if __name__ == "__main__":
    main()
