#!/usr/bin/env python
"""`mmtok bench`: every speed and memory figure in one command, on the device that is present.

    mmtok bench                      # every row; prints one Markdown table, writes runs/bench/bench.{md,json}
    mmtok bench --smoke              # every row at toy sizes, in about a minute (the test suite runs it)
    mmtok bench --only search --only peers
    python benchmarks/bench.py ...   # the same

Rows (each --only NAME): nearest-code search against vector-quantize-pytorch, alone and beside another busy
process; one VQ training step at K = 2^18; encode and decode of every family (fp32/bf16, eager/compiled, FLOP/s
against the device's peak); one training step per recipe; the tokenize job against a bare loop; one process
against two on the same cores; the peers (diffusers VQModel, transformers EnCodec / DAC / Mimi).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch
from bench_core import BenchContext, Row
from bench_models import decode_rows, encode_rows, encode_shared_rows, train_step_rows
from bench_peers import peer_rows
from bench_quantize import search_rows, search_shared_rows, vq_step_rows
from bench_tokenize import processes_rows, tokenize_rows
from quantize import cpu_model, matmul_rate

ROWS = {
    "search": search_rows,
    "search_shared": search_shared_rows,
    "vq_step": vq_step_rows,
    "encode": encode_rows,
    "decode": decode_rows,
    "encode_shared": encode_shared_rows,
    "train_step": train_step_rows,
    "tokenize": tokenize_rows,
    "processes": processes_rows,
    "peers": peer_rows,
}
COLUMNS = ("row", "case", "mmtok", "peer", "ratio", "note", "target", "verdict")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {cpu_model()} ({os.cpu_count()} cores visible, {torch.get_num_threads()} torch threads)"


def markdown(header: dict, rows: list[Row]) -> str:
    lines = [
        f"# mmtok bench: {header['device']}",
        "",
        f"torch {header['torch']}, {header['date']}, {'smoke sizes' if header['smoke'] else 'full sizes'}, "
        f"median of {header['repeats']} after a warm-up; torch.compile: {header['compile']}; fp32 matmul "
        f"{header['matmul_tflops']:.3f} TFLOP/s; 1-min load average {header['load_before']:.1f} before, "
        f"{header['load_after']:.1f} after",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for row in rows:
        lines.append("| " + " | ".join(str(getattr(row, column)).replace("|", "/") for column in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def run(args) -> int:
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    names = args.only or list(ROWS)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    repeats = args.repeats or (1 if args.smoke else 3)
    compile_ = {"on": True, "off": False, "auto": device.type == "cuda" and not args.smoke}[args.compile]
    header = {
        "device": device_name(device), "torch": torch.__version__, "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "smoke": args.smoke,
        "repeats": repeats, "compile": "on" if compile_ else "off", "load_before": os.getloadavg()[0],
    }  # fmt: skip
    failed = []
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="mmtok-bench-") as scratch:
        matmul = matmul_rate(device, repeats)
        ctx = BenchContext(
            device, args.smoke, repeats, compile_, Path(scratch), int(args.memory_budget_gib * 2**30), matmul
        )
        header["matmul_tflops"] = matmul / 1e12
        for name in names:
            print(f"mmtok bench: {name} ...", file=sys.stderr, flush=True)
            started = time.perf_counter()
            try:
                rows += ROWS[name](ctx)
            except Exception as error:  # one failed row must not lose the others' figures
                traceback.print_exc()
                failed.append(name)
                rows.append(Row(name, "failed", "—", note=f"{type(error).__name__}: {str(error)[:200]}"))
            header.setdefault("row_seconds", {})[name] = round(time.perf_counter() - started, 1)
            print(f"mmtok bench: {name} took {header['row_seconds'][name]} s", file=sys.stderr, flush=True)
    header["load_after"] = os.getloadavg()[0]
    table = markdown(header, rows)
    print(table)
    (out / "bench.md").write_text(table)
    results = {"header": header, "rows": [row.__dict__ for row in rows], "failed": failed}
    (out / "bench.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"wrote {out / 'bench.md'} and {out / 'bench.json'}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    from mmtok.cli import main

    sys.exit(main(["bench", *sys.argv[1:]]))
