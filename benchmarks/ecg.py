"""The ECG tokenizer on held-out records of MIT-BIH record 208: NMSE, Pearson r and PRD of the
decoded leads against DCT quantisation at equal bits, through `mmtok eval` (the harness and its
ECG suite), for every residual prefix (1, 2, 4 codebooks) and the DCT curve.

Trains configs/ecg.yaml (or --config, with overrides) on data_cache/ecg/mitdb208/train (the
first 4 minutes, 30 s records) for --minutes of wall time (or --max-steps), exports and reloads
the tokenizer, evaluates it on data_cache/ecg/mitdb208/heldout (the last minute, held out whole),
prints the tables and writes the report (index.html, traces) under OUT/report.

    PYTHON=python scripts/fetch_data.sh data_cache
    python benchmarks/ecg.py --data data_cache --out runs/bench-ecg --minutes 15
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mmtok.eval.harness import run_eval
from mmtok.eval.report.text import markdown_summary
from mmtok.health import describe_use
from mmtok.train.config import load_run_config
from mmtok.train.trainer import Trainer

CONFIG = Path(__file__).parents[1] / "configs" / "ecg.yaml"
RECORDS = "ecg/mitdb208"


def _row(name: str, s: dict) -> str:
    return (
        f"| {name} | {s['rate']['mean']:.0f} | {s['nmse']['mean']:.4f} | {s['pearson_r']['mean']:.4f} | "
        f"{s['prd']['mean']:.2f} |"
    )


def equal_bits_rows(report: dict) -> list[str]:
    """Each token setting beside the DCT point of the same bits (the harness's matched baseline)."""
    tok = report["tokenizers"][0]
    named = [("mmtok (all codebooks)", tok["summary"])]
    named += [(f"DCT at mmtok's bits ({codec})", m["summary"]) for codec, m in tok["matched"].items()]
    named += [(f"mmtok, {p['kind']} = {p['value']}", p["summary"]) for p in tok["sweep"]]
    named += [
        (f"{codec} {p['setting']}", p["summary"])
        for codec, points in report["baselines"]["curves"].items()
        for p in points
    ]
    header = ["| codec | bits per lead-second | NMSE | Pearson r | PRD % |", "|---|---:|---:|---:|---:|"]
    return header + [_row(name, summary) for name, summary in named]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data_cache")
    parser.add_argument("--out", default="runs/bench-ecg")
    parser.add_argument("--config", default=str(CONFIG))
    parser.add_argument("--minutes", type=float, default=15.0, help="training wall-clock budget")
    parser.add_argument("--max-steps", type=int, default=None, help="a step budget instead of --minutes")
    parser.add_argument("--eval-only", action="store_true", help="evaluate OUT/tokenizer without training")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    out, records = Path(args.out), Path(args.data) / RECORDS
    if not args.eval_only:
        overrides = [f"output_dir={out / 'run'}", f"data.source={records / 'train'}", *args.overrides]
        if args.max_steps is not None:
            overrides += [f"train.max_steps={args.max_steps}"]
        else:
            overrides += [f"train.max_minutes={args.minutes}", "train.max_steps=1000000"]
        trainer = Trainer(load_run_config(args.config, overrides), resume=True)
        started = time.perf_counter()
        trainer.fit()
        minutes = (time.perf_counter() - started) / 60
        card = {"training_data": f"{records / 'train'} (MIT-BIH record 208, first 240 s)", "steps": trainer.step}
        trainer.inference_model.save_pretrained(out / "tokenizer", card=card)
        print(f"trained {trainer.step} steps in {minutes:.1f} minutes")
        for index, stats in enumerate(trainer.last_health):
            print(f"codebook {index} (last training window): {describe_use(stats)}")
    report = run_eval([str(out / "tokenizer")], str(records / "heldout"), out / "report")
    print(f"\nheld-out: {len(report['items'])} records of {RECORDS}/heldout\n")
    print("\n".join(equal_bits_rows(report)))
    print()
    print(markdown_summary(report))
    for index, stats in enumerate(report["tokenizers"][0]["codebooks"]):
        print(f"codebook {index} (held-out): {describe_use(stats)}")
    print(f"report: {out / 'report' / 'index.html'}")


if __name__ == "__main__":
    main()
