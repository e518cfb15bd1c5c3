#!/usr/bin/env python
"""The AR probe's two targets: it ranks tokenizers the same way under two seeds (with a 95 %
interval over seeds), and the quickstart tokenizer's probe takes under 5 CPU minutes.

    python benchmarks/ar_probe.py --pair runs/digits/tokenizer runs/digits_large/tokenizer \
        --train data_cache/pairs/digits --heldout data_cache/pairs/digits_heldout \
        --quickstart runs/quickstart/tokenizer --quickstart-train data_cache/images/train

1. ranking: `mmtok eval --ar-probe TRAIN --ar-probe-seeds 2` on the two tokenizers (e.g. two image
   tokenizers that differ only in codebook size), one budget and the same seeds for both; prints
   each seed's held-out bits per token, the mean with its 95 % t-interval, and whether both seeds
   order the tokenizers alike (by bits per token and by the LM's bits per pixel);
2. time: the probe alone (one seed, the default budget) on the quickstart tokenizer, its training
   stream from --quickstart-train and held-out photos from sample-images, in CPU seconds
   (user + system of this process: the probe's work whatever the thread count) and wall seconds.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

import torch

from mmtok.eval.harness import EvalOptions, run_eval
from mmtok.eval.report.text import ar_probe_table


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ranking(pair: list[str], train: str, heldout: str, steps: int, limit: int | None) -> None:
    options = EvalOptions(
        sweep=False, baselines=False, media_items=0, ar_probe=train, ar_probe_steps=steps, ar_probe_seeds=2, limit=limit
    )
    with tempfile.TemporaryDirectory() as out:
        report = run_eval(pair, heldout, out, options)
    probe = report["ar_probe"]["tokenizers"]
    print("\n".join(ar_probe_table(report)))
    print("\n| tokenizer | codes | seed 0 bits/token | seed 1 bits/token |\n|---|---|---|---|")
    for tok, summary in zip(probe, report["tokenizers"]):
        seeds = tok["bits_per_token"]["per_seed"]
        print(f"| {tok['name']} | {summary['codebook_sizes']} | {seeds[0]:.4f} | {seeds[1]:.4f} |")
    names = [tok["name"] for tok in probe]
    for measure in ("bits/token", "LM rate"):
        orders = []
        for seed in range(2):
            score = [
                tok["bits_per_token"]["per_seed"][seed] if measure == "bits/token" else tok["lm_rate_per_seed"][seed]
                for tok in probe
            ]
            orders.append([names[t] for t in sorted(range(2), key=score.__getitem__)])
        agree = "met" if orders[0] == orders[1] else "NOT met"
        print(f"\nranking by {measure}, seed 0: {orders[0]}; seed 1: {orders[1]}")
        print(f"target: the same ranking under both seeds ({measure}): {agree}")


def quickstart_time(tokenizer: str, train: str, steps: int) -> None:
    options = EvalOptions(sweep=False, baselines=False, media_items=0, ar_probe=train, ar_probe_steps=steps)
    with tempfile.TemporaryDirectory() as out:
        cpu, wall = cpu_seconds(), time.perf_counter()
        report = run_eval([tokenizer], "sample-images", out, options)
        cpu, wall = cpu_seconds() - cpu, time.perf_counter() - wall
    probe = report["ar_probe"]["tokenizers"][0]
    print("\n".join(ar_probe_table(report)))
    print(
        f"\nquickstart probe: {probe['seconds']:.1f} s wall for the probe itself "
        f"({probe['train_tokens']} training ids); "
        f"the whole eval {wall:.1f} s wall, {cpu:.1f} CPU s ({torch.get_num_threads()} threads, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')})"
    )
    print(f"target: under 5 CPU minutes: {'met' if cpu < 300 else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pair", nargs=2, metavar="TOKENIZER", help="two tokenizers to rank")
    parser.add_argument("--train", help="the probe's training data for the pair")
    parser.add_argument("--heldout", help="held-out data for the pair")
    parser.add_argument("--limit", type=int, default=None, help="held-out items for the pair")
    parser.add_argument("--steps", type=int, default=EvalOptions.ar_probe_steps)
    parser.add_argument("--quickstart", default=None, help="the quickstart tokenizer, for the time target")
    parser.add_argument("--quickstart-train", default=None, help="its probe's training photos")
    args = parser.parse_args()
    if args.pair:
        ranking(args.pair, args.train, args.heldout, args.steps, args.limit)
    if args.quickstart:
        quickstart_time(args.quickstart, args.quickstart_train, args.steps)


if __name__ == "__main__":
    main()
