"""The audio codec against Opus on real speech and music it never trained on.

Trains configs/audio_speech.yaml (or --config) on the speech and music `scripts/fetch_data.sh`
fetched, minus held-out clips (the pocketsphinx-testdata clips, LibriVox and spoken cards, and 3
music files), for --minutes; then evaluates the saved codec with `mmtok eval`'s harness on the
held-out clips (cut to --clip-seconds; speech clips that stay whole keep their transcripts): mel
and STFT distance, SI-SDR, STOI, wide-band PESQ, DNSMOS, speaker similarity and PocketSphinx's word
error rate (for the originals too) at 1, 2, 4 and 8 codebooks (its codebook sweep) next to Opus
(PyAV) at its rate and at 6 to 24 kbps, the codebook health, and encode/decode real-time factors
on this machine. The report folder is written to OUT/report; OUT/spectrograms.png sets the first
LibriVox clip's spectrogram beside the codec's (all codebooks and the first alone) and Opus at 6
and 12 kbps, whose WAVs are in OUT/listen.

    PYTHON=python scripts/fetch_data.sh data_cache
    python benchmarks/audio_codec.py --data data_cache --out runs/bench-audio --minutes 30
"""

from __future__ import annotations

import argparse
from pathlib import Path

from heldout_audio import split_clips, write_clips

from mmtok.eval.harness import run_eval
from mmtok.eval.report.text import markdown_summary
from mmtok.train.config import load_run_config
from mmtok.train.trainer import Trainer

CONFIG = Path(__file__).parents[1] / "configs" / "audio_speech.yaml"
SPECTROGRAM_KBPS = (6.0, 12.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data_cache")
    parser.add_argument("--out", default="runs/bench-audio")
    parser.add_argument("--config", default=str(CONFIG))
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--minutes", type=float, default=None, help="the training budget (train.max_minutes)")
    parser.add_argument("--clip-seconds", type=float, default=8.0, help="held-out clips are cut to this length")
    parser.add_argument("--weights", choices=("ema", "raw"), default="ema", help="which weights to evaluate")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    out, data = Path(args.out), Path(args.data)
    held = split_clips(data, out / "train-clips")
    overrides = [f"output_dir={out / 'run'}", f"data.source={out / 'train-clips'}", *args.overrides]
    if args.max_steps is not None:
        overrides.append(f"train.max_steps={args.max_steps}")
    if args.minutes is not None:
        overrides.append(f"train.max_minutes={args.minutes}")
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
    speech = sorted(clips.glob("*sense_and_sensibility*.wav"))
    if speech:
        listen(model.eval(), speech[0], out)
        print(f"spectrograms: {out / 'spectrograms.png'}; WAVs: {out / 'listen'}")
    print(f"report: {out / 'report' / 'index.html'}")


def listen(model, clip: Path, out: Path) -> None:
    """One clip as the codec (every codebook, and the first alone) and Opus at SPECTROGRAM_KBPS give it
    back: WAVs under OUT/listen and their spectrograms side by side in OUT/spectrograms.png."""
    import numpy as np
    import soundfile as sf
    import torch
    from PIL import Image

    from mmtok.eval.codecs.opus import opus_roundtrip
    from mmtok.eval.suites.audio import spectrogram

    rate = model.config.sample_rate
    prepared = model.input_spec().prepare(clip.read_bytes())
    x = prepared.tensor
    with torch.no_grad():
        ids = model.encode(x)
        versions = {"original": x[0, 0], f"mmtok {ids.shape[-1]} codebooks": model.decode(ids)[0, 0]}
        versions["mmtok 1 codebook"] = model.decode(ids[..., :1])[0, 0]
    for kbps in SPECTROGRAM_KBPS:
        versions[f"Opus {kbps:g} kbps"] = opus_roundtrip(x[0, 0], rate, kbps)[0][0]
    folder = out / "listen"
    folder.mkdir(parents=True, exist_ok=True)
    pictures = []
    for name, wave in versions.items():
        stem = name.replace(" ", "_")
        samples = wave[: x.shape[-1]].clamp(-1, 1).float().numpy()
        sf.write(folder / f"{stem}.wav", samples, rate, subtype="PCM_16")
        spectrogram(samples, rate, folder / f"{stem}.png", title=name)
        pictures.append(np.asarray(Image.open(folder / f"{stem}.png").convert("RGB")))
    height = min(p.shape[0] for p in pictures)
    Image.fromarray(np.concatenate([p[:height] for p in pictures], axis=1)).save(out / "spectrograms.png")


if __name__ == "__main__":
    main()
