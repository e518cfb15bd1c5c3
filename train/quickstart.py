"""`mmtok quickstart`: train the embedded default image tokenizer on scikit-image's photos, save
it, reconstruct the held-back photos and print what the tokens keep."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

from mmtok.health import describe_use
from mmtok.train.config import load_run_config

QUICKSTART_CONFIG = files("mmtok.configs").joinpath("quickstart.yaml")


def run_quickstart(out: str = "runs/quickstart", max_steps: int | None = None, extra: list[str] = ()) -> dict:
    from mmtok.eval.image import grayscale
    from mmtok.eval.reconstruct import evaluate_image_tokenizer
    from mmtok.train.export import export_run
    from mmtok.train.image_recipe import sample_image_split
    from mmtok.train.trainer import Trainer

    overrides = [f"output_dir={out}", f"data.cache_dir={Path(out) / 'sample-images'}", *extra]
    if max_steps is not None:
        overrides.append(f"train.max_steps={max_steps}")
    config = load_run_config(str(QUICKSTART_CONFIG), overrides)
    trainer = Trainer(config)
    trainer.fit()

    _, held = sample_image_split(trainer.recipe.data.held_out)
    report = evaluate_image_tokenizer(trainer.inference_model, held)
    # Gray in must be gray out: the same photos in gray, whose reconstructions should keep no colour.
    report["gray"] = evaluate_image_tokenizer(trainer.inference_model, [(n, grayscale(p)) for n, p in held])
    report["training_codebooks"] = trainer.last_health  # usage over the last health window of training
    report["steps"] = trainer.step
    report["tokenizer_dir"] = str(Path(out) / "tokenizer")
    (Path(out) / "quickstart_report.json").write_text(json.dumps(report, indent=2))
    export_run(out, report["tokenizer_dir"], use_ema=trainer.ema is not None)
    print_report(report)
    return report


def print_report(report: dict) -> None:
    print(f"\nmmtok quickstart: {report['steps']} steps, tokenizer saved to {report['tokenizer_dir']}")
    print(f"{'held-out image':<22} {'size':>9} {'bpp':>6} {'PSNR dB':>8} {'SSIM':>6} {'colour in -> out':>17}")
    for row in report["images"]:
        print(
            f"{row['name']:<22} {row['height']:>4}x{row['width']:<4} {row['bpp']:>6.3f} "
            f"{row['psnr']:>8.2f} {row['ssim']:>6.3f} {row['colour_in']:>8.1f} -> {row['colour_out']:<5.1f}"
        )
    mean = report["mean"]
    print(
        f"{'mean':<22} {'':>9} {mean['bpp']:>6.3f} {mean['psnr']:>8.2f} {mean['ssim']:>6.3f} "
        f"{mean['colour_in']:>8.1f} -> {mean['colour_out']:<5.1f} (colour kept {100 * mean['colour_kept']:.0f} %)"
    )
    gray = report["gray"]
    casts = ", ".join(f"{row['name']} {row['colour_out']:.2f}" for row in gray["images"])
    print(
        f"the same photos in gray come back {gray['mean']['colour_out']:.2f} from gray ({casts}; 0 is gray, "
        f"max - min per pixel {gray['mean']['spread_out']:.2f}) at {gray['mean']['psnr']:.2f} dB"
    )
    for label, key in (("last training window", "training_codebooks"), ("held-out images", "codebooks")):
        for index, stats in enumerate(report[key]):
            print(f"codebook {index} ({label}): {describe_use(stats)}")
