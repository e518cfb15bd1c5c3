"""`mmtok quickstart`: train the embedded default image tokenizer on scikit-image's photos, save
it, and evaluate it on the held-back photos through `mmtok eval` (mmtok.eval.harness): what the
tokens keep next to JPEG, WebP and AVIF at the same bits, and whether gray photos come back gray."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

from mmtok.health import describe_use
from mmtok.train.config import load_run_config

QUICKSTART_CONFIG = files("mmtok.configs").joinpath("quickstart.yaml")


EVAL_CROP = 256  # held-out photos are scored on centred crops of at most this per side


def run_quickstart(out: str = "runs/quickstart", max_steps: int | None = None, extra: list[str] = ()) -> dict:
    from mmtok.eval.harness import EvalOptions, evaluate
    from mmtok.eval.metrics.image import grayscale
    from mmtok.eval.systems import TokenizerSystem
    from mmtok.train.export import export_run
    from mmtok.train.image_recipe import sample_image_split
    from mmtok.train.trainer import Trainer

    overrides = [f"output_dir={out}", f"data.cache_dir={Path(out) / 'sample-images'}", *extra]
    if max_steps is not None:
        overrides.append(f"train.max_steps={max_steps}")
    config = load_run_config(str(QUICKSTART_CONFIG), overrides)
    trainer = Trainer(config)
    trainer.fit()
    tokenizer_dir = Path(out) / "tokenizer"
    export_run(out, str(tokenizer_dir), use_ema=trainer.ema is not None)

    # `mmtok eval` on the held-back photos: the tokenizer beside JPEG, WebP and AVIF at its bits.
    _, held = sample_image_split(trainer.recipe.data.held_out)
    system = TokenizerSystem.from_model("mmtok", trainer.inference_model)
    options = EvalOptions(crop_size=EVAL_CROP, sweep=False, media_items=len(held))
    heldout = evaluate([system], held, Path(out) / "eval", options, data="the quickstart's held-out photos")
    # Gray in must be gray out: the same photos in gray, whose reconstructions should keep no colour.
    gray_options = EvalOptions(crop_size=EVAL_CROP, sweep=False, baselines=False, media_items=0)
    gray_held = [(name, grayscale(pixels)) for name, pixels in held]
    gray = evaluate([system], gray_held, Path(out) / "eval-gray", gray_options, data="the same photos in gray")
    report = {
        "steps": trainer.step,
        "tokenizer_dir": str(tokenizer_dir),
        "eval_report": str(Path(out) / "eval" / "index.html"),
        "heldout": heldout["tokenizers"][0],
        "gray": gray["tokenizers"][0],
        "training_codebooks": trainer.last_health,  # usage over the last health window of training
    }
    (Path(out) / "quickstart_report.json").write_text(json.dumps(report, indent=2, default=float))
    print_report(report)
    return report


def print_report(report: dict) -> None:
    from mmtok.eval.aggregate import means

    heldout, gray = report["heldout"], report["gray"]
    print(f"\nmmtok quickstart: {report['steps']} steps, tokenizer saved to {report['tokenizer_dir']}")
    print(f"{'held-out image':<28} {'bpp':>6} {'PSNR dB':>8} {'SSIM':>6} {'colour in -> out':>17}")
    for row in heldout["items"]:
        print(
            f"{row['item']:<28} {row['rate']:>6.3f} {row['psnr']:>8.2f} {row['ssim']:>6.3f} "
            f"{row['colour_in']:>8.1f} -> {row['colour_out']:<5.1f}"
        )
    for label, summary in [("mean", heldout["summary"])] + [
        (f"{codec} at >= its bits (mean)", group["summary"]) for codec, group in heldout["matched"].items()
    ]:
        mean = means(summary)
        print(
            f"{label:<28} {mean['rate']:>6.3f} {mean['psnr']:>8.2f} {mean['ssim']:>6.3f} "
            f"{mean['colour_in']:>8.1f} -> {mean['colour_out']:<5.1f} (colour kept {100 * mean['colour_kept']:.0f} %)"
        )
    casts = ", ".join(f"{row['item']} {row['colour_out']:.2f}" for row in gray["items"])
    mean = means(gray["summary"])
    print(
        f"the same photos in gray come back {mean['colour_out']:.2f} from gray ({casts}; 0 is gray, "
        f"max - min per pixel {mean['channel_spread']:.2f}) at {mean['psnr']:.2f} dB"
    )
    for label, stats_list in (
        ("last training window", report["training_codebooks"]),
        ("held-out", heldout["codebooks"]),
    ):
        for index, stats in enumerate(stats_list):
            print(f"codebook {index} ({label}): {describe_use(stats)}")
    print(f"the whole report (pictures, every metric): {report['eval_report']}")
