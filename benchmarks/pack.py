#!/usr/bin/env python
"""`mmtok pack` against reading the same shards alone: what turning ids into training files costs.

    python benchmarks/pack.py                      # 20,000 image rows of 16x16 tokens, 4 shards
    python benchmarks/pack.py --rows 50000 --json pack.json

The shards are written directly in the tokenize job's format (random ids of a 16,384-code image
tokenizer layout, flat codebook ids, as `mmtok tokenize` stores them by default), so the figure is
pack's own work, not a tokenizer's. In one process, one after another on the same files:

1. read alone: pyarrow reads every shard's ids column into numpy (what any loader of the shards
   must do at least), and, for scale, mmtok's ShardDataset iterating the rows one by one (how a
   training loop reads shards without packing);
2. `mmtok pack`, media only, writing the Megatron dataset and the parquet rows;
3. `mmtok pack` with a caption per item (a jsonl table, a BPE text tokenizer), both formats.

Tokens/s counts shard tokens for 1 and packed tokens for 2 and 3 (start/end, text and eod
included). Target: pack >= 50 % of the read-alone rate.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from mmtok.pack import PackSettings, run_pack
from mmtok.pack_text import open_text
from mmtok.shards import MANIFEST_FILE, ShardWriter, shard_files
from mmtok.storage import Folder
from mmtok.vocab import VocabLayout

GRID, CODES = 16, 16_384


class _Keys:
    """The two things ShardWriter asks of a media source."""

    def key(self, i: int) -> str:
        return f"img_{i:07d}.png"

    def describe(self, i: int) -> str:
        return f"/data/images/{self.key(i)}"


def write_shards(folder: Path, rows: int, shards: int, seed: int = 0) -> int:
    layout = VocabLayout("image", [GRID, GRID], [CODES])
    folder.mkdir(parents=True)
    writer = ShardWriter(Folder(folder), _Keys(), {}, "uint16")
    rng = np.random.default_rng(seed)
    per_shard = -(-rows // shards)
    names, tokens = [], 0
    for shard in range(shards):
        indexes = range(shard * per_shard, min(rows, (shard + 1) * per_shard))
        batch = [
            {
                "index": i,
                "ids": rng.integers(0, CODES, GRID * GRID).astype(np.uint16),
                "token_shape": [GRID, GRID, 1],
                "info": {"num_bytes": 0},
            }
            for i in indexes
        ]
        stats = writer.write(shard, batch, [], {})
        names.append(f"shard-{shard:06d}.parquet")
        tokens += stats["tokens"]
    manifest = {
        "tokenizer": {"weights_sha256": "benchmark", "family": "image", "modality": "image"},
        "vocab": layout.to_json(),
        "llm_ids": False,
        "shards": names,
        "counts": {"samples": rows, "tokens": tokens, "errors": 0, "inputs": rows},
    }
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest))
    return tokens


def read_alone(folder: Path) -> tuple[int, float]:
    started = time.perf_counter()
    tokens = 0
    for path in shard_files(folder):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=1024, columns=["ids", "token_shape"]):
            ids = batch.column("ids")
            tokens += len(ids.values.to_numpy())
    return tokens, time.perf_counter() - started


def read_rows(folder: Path) -> tuple[int, float]:
    """The shards as a training loop reads them without packing: mmtok's ShardDataset, row by row."""
    from mmtok.shards import ShardDataset

    started = time.perf_counter()
    tokens = sum(len(sample["ids"]) for sample in ShardDataset(folder, llm_ids=False).samples())
    return tokens, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=4096)
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    from mmtok.llm_client import build_text_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shard_tokens = write_shards(tmp / "shards", args.rows, args.shards)
        captions = tmp / "captions.jsonl"
        words = ["red", "small", "bright", "river", "photo", "of", "a", "the", "house", "dog", "sky", "night"]
        rng = np.random.default_rng(1)
        with captions.open("w") as f:
            for i in range(args.rows):
                caption = " ".join(rng.choice(words, int(rng.integers(4, 12))))
                f.write(json.dumps({"key": _Keys().key(i), "text": caption}) + "\n")
        build_text_tokenizer().save_pretrained(tmp / "text_tokenizer")
        settings = PackSettings(seq_len=args.seq_len)

        read_alone(tmp / "shards")  # warm the page cache, so every run below reads from memory
        tokens, read_seconds = read_alone(tmp / "shards")
        row_tokens, row_seconds = read_rows(tmp / "shards")
        assert tokens == shard_tokens == row_tokens
        media = run_pack([tmp / "shards"], tmp / "media_only", settings)
        text = run_pack(
            [tmp / "shards"],
            tmp / "with_text",
            settings,
            text_source=open_text(str(captions)),
            text_tokenizer=str(tmp / "text_tokenizer"),
        )
    read_rate = tokens / read_seconds
    results = {
        "rows": args.rows,
        "shard_tokens": tokens,
        "read_tokens_per_s": read_rate,
        "read_rows_tokens_per_s": row_tokens / row_seconds,
        "pack_media_tokens_per_s": media["tokens_per_second"],
        "pack_text_tokens_per_s": text["tokens_per_second"],
        "pack_media_ratio": media["tokens_per_second"] / read_rate,
        "pack_text_ratio": text["tokens_per_second"] / read_rate,
        "threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cpu": platform.processor() or platform.machine(),
    }
    print(f"{args.rows} rows x {GRID * GRID} tokens in {args.shards} shards, seq_len {args.seq_len}\n")
    print("| what | tokens/s | vs read alone |")
    print("|---|---:|---:|")
    table = [
        ("read the shards alone (pyarrow columns -> numpy)", read_rate, 1.0),
        (
            "read the shards row by row (ShardDataset)",
            results["read_rows_tokens_per_s"],
            row_tokens / row_seconds / read_rate,
        ),
        ("mmtok pack, media only (megatron + parquet)", media["tokens_per_second"], results["pack_media_ratio"]),
        ("mmtok pack, with captions (megatron + parquet)", text["tokens_per_second"], results["pack_text_ratio"]),
    ]
    for what, rate, ratio in table:
        print(f"| {what} | {rate:,.0f} | {ratio:.2f} |")
    met = min(results["pack_media_ratio"], results["pack_text_ratio"]) >= 0.5
    print(f"\ntarget: pack >= 50 % of the read-alone rate: {'met' if met else 'NOT met'}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
