#!/usr/bin/env python
"""`mmtok tokenize` against bare encoding: what the whole pipeline costs, and how it scales.

    python benchmarks/tokenize_shards.py                    # ~200 generated PNGs, a random tokenizer
    python benchmarks/tokenize_shards.py --images 400 --json tokenize.json
    python benchmarks/tokenize_shards.py --only pretrained   # just the pretrained-adapter row (3.)
    python benchmarks/tokenize_shards.py --only ray          # just the Ray engine (4.)

1. overhead: `frozen.encode_tensor` alone on pre-decoded batches (the batches the job makes: same
   order, same sizes) vs the whole job on the same files, in this process: listing, decoding in
   DataLoader workers, encoding, parquet writing, manifest, model loading included.
   On CPU both encode with --threads threads and the job gets --workers decoding workers on
   the other cores, as a deployment would give it.
2. scaling: the job as one process vs `accelerate launch --multi_gpu --num_processes 2` (on CPU,
   each process with one thread and decoding in-process, so each owns one core), throughput as
   the job reports it in manifest.json, and a check that both wrote identical rows.

3. a pretrained adapter: a transformers EnCodec converted by `mmtok convert`, the job against the
   model's own encode in a bare loop and against a per-file script (benchmarks/pretrained_tokenize.py).

4. the Ray engine (`--engine ray`, benchmarks/tokenize_ray.py): against the accelerate engine and a
   bare loop on the same files, with an actor killed mid-way, the driver's memory, and what
   --deterministic costs.

Output is Markdown, ending with the targets: overhead <= 10 %, 2 processes >= 1.8x one (CPU); for
the adapter, the job within 10 % of bare encoding and faster than the per-file script.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mmtok import load_tokenizer
from mmtok.models import build_tokenizer
from mmtok.shards import read_manifest, shard_files
from mmtok.tokenize import tokenize

# Sizes per device: the model must be big enough that encoding, not Python, is the work measured.
SETUPS = {
    "cpu": {
        "size": 128,
        "batch": 16,
        "model": {"base_channels": 32, "channel_multipliers": [1, 2, 2, 4], "num_res_blocks": 2},
    },
    "cuda": {
        "size": 256,
        "batch": 64,
        "model": {"base_channels": 128, "channel_multipliers": [1, 2, 2, 4], "num_res_blocks": 2},
    },
}


def write_images(folder: Path, count: int, size: int) -> None:
    """Smooth random colour images (PNG, like a photo folder would hold)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(count):
        waves = [
            np.sin(2 * np.pi * (rng.uniform(0.5, 3) * xx + rng.uniform(0.5, 3) * yy + rng.uniform())) for _ in range(3)
        ]
        noise = rng.normal(0, 0.05, (size, size, 3))
        pixels = ((np.stack(waves, -1) + noise).clip(-1, 1) + 1) * 127.5
        Image.fromarray(pixels.astype(np.uint8)).save(folder / f"img_{i:05d}.png")


def bare_encode_seconds(tok_dir: Path, paths: list[Path], batch: int, shard: int, device: str) -> float:
    """encode alone, on the job's batches decoded beforehand (batches never cross a shard)."""
    frozen = load_tokenizer(tok_dir, device=device)
    batches = []
    for start in range(0, len(paths), shard):
        items = paths[start : start + shard]
        batches += [frozen.media_to_tensor([str(p) for p in items[i : i + batch]]) for i in range(0, len(items), batch)]
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else nullcontext()
    with torch.inference_mode(), autocast:
        frozen.encode_tensor(batches[0].to(device))  # warm-up: allocator, kernels
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for x in batches:
            ids = frozen.encode_tensor(x.to(device, non_blocking=True)).cpu()
            [frozen.vocab.flatten_ids(example) for example in ids]  # the job also needs the ids on the host
    return time.perf_counter() - start


def job_seconds(tok_dir: Path, data: Path, out: Path, batch: int, shard: int, workers: int) -> float:
    start = time.perf_counter()
    tokenize(tok_dir, data, out, batch_size=batch, shard_size=shard, num_workers=workers, progress=False)
    return time.perf_counter() - start


def launch(
    tok_dir: Path, data: Path, out: Path, batch: int, shard: int, processes: int, threads: int | None = 1
) -> dict:
    """The job as `mmtok tokenize` (or under `accelerate launch` for 2+ processes) in a fresh process, with
    OMP_NUM_THREADS=threads (None: as the environment and the launcher leave it)."""
    env = {key: value for key, value in os.environ.items() if key != "OMP_NUM_THREADS"}
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    job = [
        "-m",
        "mmtok",
        "tokenize",
        str(tok_dir),
        str(data),
        str(out),
        "--batch-size",
        str(batch),
        "--shard-size",
        str(shard),
        "--num-workers",
        "0",
    ]
    if processes > 1:
        job = [
            "-m",
            "accelerate.commands.launch",
            "--multi_gpu",
            "--num_processes",
            str(processes),
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            *job,
        ]
    cpu_before, wall_before = _children_cpu_seconds(), time.perf_counter()
    result = subprocess.run([sys.executable, *job], capture_output=True, text=True, env=env)
    if result.returncode:
        raise RuntimeError(result.stderr[-3000:])
    # How many cores the job actually got (imports and startup included): on a shared machine,
    # what bounds the 2-process speed-up.
    cores = (_children_cpu_seconds() - cpu_before) / (time.perf_counter() - wall_before)
    return {**read_manifest(out), "cores_used": cores}


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def sorted_rows(out: Path) -> list[dict]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    return sorted(pa.concat_tables([pq.read_table(f) for f in shard_files(out)]).to_pylist(), key=lambda r: r["key"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each measurement; the median is reported")
    parser.add_argument("--threads", type=int, default=1, help="CPU encode threads in the overhead section")
    parser.add_argument("--workers", type=int, default=1, help="decoding workers of the job in the overhead section")
    parser.add_argument("--shard-size", type=int, default=50)
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    parser.add_argument("--clips", type=int, default=120, help="WAV clips for the pretrained-adapter row")
    parser.add_argument("--clip-seconds", type=float, default=1.0)
    parser.add_argument("--only", choices=("all", "pretrained", "ray"), default="all")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    setup = SETUPS[device]
    if device == "cpu":
        torch.set_num_threads(args.threads)
    if args.only == "pretrained":
        print_pretrained_row(args)
        return
    if args.only == "ray":
        print_ray_section(args, setup)
        return

    load_before = os.getloadavg()[0]  # the machine may be shared: say how busy it was
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_images(root / "data", args.images, setup["size"])
        torch.manual_seed(0)
        config = {"family": "image", "image_size": setup["size"], "attention": False, **setup["model"]}
        tok_dir = build_tokenizer(config).save_pretrained(root / "tok")
        paths = sorted((root / "data").glob("*.png"))
        batch, shard = setup["batch"], args.shard_size

        bare, whole = [], []
        for r in range(args.repeats):
            bare.append(bare_encode_seconds(tok_dir, paths, batch, shard, device))
            whole.append(job_seconds(tok_dir, root / "data", root / f"job{r}", batch, shard, args.workers))
        bare_s, whole_s = statistics.median(bare), statistics.median(whole)
        overhead = whole_s / bare_s - 1

        one = [launch(tok_dir, root / "data", root / f"one{r}", batch, shard, 1) for r in range(args.repeats)]
        two = [launch(tok_dir, root / "data", root / f"two{r}", batch, shard, 2) for r in range(args.repeats)]
        one_rate = statistics.median(m["run"]["samples_per_second"] for m in one)
        two_rate = statistics.median(m["run"]["samples_per_second"] for m in two)
        reference = sorted_rows(root / "one0")
        identical = all(
            sorted_rows(root / f"{kind}{r}") == reference for kind in ("one", "two") for r in range(args.repeats)
        )
        world_sizes = sorted({m["run"]["world_size"] for m in two})

    print(
        f"# mmtok tokenize: {args.images} PNGs of {setup['size']} px, {device}, "
        f"{platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__}; median of {args.repeats}; "
        f"1-min load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after\n"
    )
    print("| measurement | seconds | images/s |")
    print("|---|---|---|")
    print(
        f"| bare `model.encode` on pre-decoded batches ({args.threads} thread) | {bare_s:.2f} "
        f"| {args.images / bare_s:.1f} |"
    )
    print(f"| whole job, 1 process, {args.workers} decoding worker(s) | {whole_s:.2f} | {args.images / whole_s:.1f} |")
    cores = {name: statistics.median(m["cores_used"] for m in runs) for name, runs in (("one", one), ("two", two))}
    print(f"| job, 1 process (1 thread, decoding in-process; got {cores['one']:.2f} cores) | | {one_rate:.1f} |")
    print(
        f"| job, 2 processes (accelerate launch, world size {world_sizes}; got {cores['two']:.2f} cores) "
        f"| | {two_rate:.1f} |"
    )
    print("\n## targets\n")
    print(
        f"- pipeline overhead over bare encode: {overhead * 100:+.1f} % (target <= 10 %): "
        f"{'met' if overhead <= 0.10 else 'NOT met'}"
    )
    ratio = two_rate / one_rate
    print(f"- 2 processes / 1 process: {ratio:.2f}x (target >= 1.8x on CPU): {'met' if ratio >= 1.8 else 'NOT met'}")
    print(f"- rows of every 1- and 2-process run identical: {'yes' if identical else 'NO'}")
    print(
        f"\nruns (s): bare {[round(s, 2) for s in bare]}, job {[round(s, 2) for s in whole]}; "
        f"1-process {[round(m['run']['samples_per_second'], 1) for m in one]} images/s, "
        f"2-process {[round(m['run']['samples_per_second'], 1) for m in two]} images/s"
    )
    print_pretrained_row(args)
    print_ray_section(args, setup)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "bare_s": bare,
                    "job_s": whole,
                    "overhead": overhead,
                    "one_process": one_rate,
                    "two_processes": two_rate,
                    "ratio": ratio,
                    "cores_used": cores,
                    "identical": identical,
                },
                indent=2,
            )
        )


def print_ray_section(args, setup: dict) -> dict:
    from tokenize_ray import measure, print_ray_rows

    with tempfile.TemporaryDirectory() as tmp:
        numbers = measure(
            Path(tmp),
            images=args.images,
            repeats=args.repeats,
            setup=setup,
            write_images=write_images,
            sorted_rows=sorted_rows,
            bare_seconds=bare_encode_seconds,
        )
    print_ray_rows(numbers)
    if args.json:
        args.json.with_suffix(".ray.json").write_text(json.dumps(numbers, indent=2, default=str))
    return numbers


def print_pretrained_row(args) -> dict:
    from pretrained_tokenize import measure

    with tempfile.TemporaryDirectory() as tmp:
        numbers = measure(
            Path(tmp),
            clips=args.clips,
            seconds=args.clip_seconds,
            shard=args.shard_size,
            workers=args.workers,
            repeats=args.repeats,
        )
    clips = numbers["clips"]
    print(
        f"\n# pretrained adapter: transformers EncodecModel (24 kHz architecture, random weights, 6 kbps) "
        f"converted by `mmtok convert`; {clips} WAV clips of {numbers['seconds']} s, {numbers['device']}, "
        f"batches of {numbers['batch']}, shards of {args.shard_size}; median of {args.repeats}\n"
    )
    print("| measurement | seconds | clips/s |")
    print("|---|---|---|")
    rows = [
        (f"bare `EncodecModel.encode` on pre-decoded batches ({args.threads} thread)", numbers["bare"]),
        (f"`mmtok tokenize` with the converted artifact, {args.workers} decoding worker(s)", numbers["job"]),
        ("per-file script: decode a clip, `encode` it alone, one parquet at the end", numbers["per_file"]),
    ]
    for label, seconds in rows:
        print(f"| {label} | {seconds:.2f} | {clips / seconds:.1f} |")
    overhead = numbers["job"] / numbers["bare"] - 1
    speedup = numbers["per_file"] / numbers["job"]
    print("\n## targets (pretrained adapter)\n")
    verdict = "met" if overhead <= 0.10 else "NOT met"
    print(f"- job over bare encode: {overhead * 100:+.1f} % (target <= 10 %): {verdict}")
    print(f"- job vs per-file script: {speedup:.2f}x faster (target > 1x): {'met' if speedup > 1 else 'NOT met'}")
    print(
        f"\nruns (s): bare {[round(s, 2) for s in numbers['bare_s']]}, job {[round(s, 2) for s in numbers['job_s']]}, "
        f"per-file {[round(s, 2) for s in numbers['per_file_s']]}"
    )
    return numbers


if __name__ == "__main__":
    main()
