"""`mmtok bench` rows for the tokenize job: the whole job against a bare encode loop on the same files, and
"2 processes on these cores": the job under `accelerate launch --num_processes 2` against one process.
The measurements themselves are tokenize_shards.py's."""

from __future__ import annotations

import statistics

import torch
from bench_core import BenchContext, Row, rate, times, verdict
from tokenize_shards import SETUPS, bare_encode_seconds, job_seconds, launch, sorted_rows, write_images

from mmtok.models import build_tokenizer


def _setup(ctx: BenchContext) -> dict:
    """Generated PNGs and a random image tokenizer, made once per run and shared by both rows."""
    folder = ctx.workdir / "tokenize"
    setup = dict(SETUPS["cuda" if ctx.on_cuda else "cpu"])
    if ctx.smoke:
        setup.update(size=32, batch=4, model={"base_channels": 8, "channel_multipliers": [1, 2], "num_res_blocks": 1})
    setup.update(images=16 if ctx.smoke else 200, shard=8 if ctx.smoke else 50, data=folder / "data")
    if not (folder / "tok").exists():
        write_images(setup["data"], setup["images"], setup["size"])
        torch.manual_seed(0)
        config = {"family": "image", "image_size": setup["size"], "attention": False, **setup["model"]}
        build_tokenizer(config).save_pretrained(folder / "tok")
    setup["tok"] = folder / "tok"
    return setup


def tokenize_rows(ctx: BenchContext) -> list[Row]:
    s = _setup(ctx)
    paths = sorted(s["data"].glob("*.png"))
    bare, job = [], []
    for r in range(ctx.repeats):
        bare.append(bare_encode_seconds(s["tok"], paths, s["batch"], s["shard"], ctx.device.type))
        out = ctx.workdir / "tokenize" / f"job{r}"
        job.append(job_seconds(s["tok"], s["data"], out, s["batch"], s["shard"], workers=1))
    bare_s, job_s = statistics.median(bare), statistics.median(job)
    overhead = job_s / bare_s - 1
    label = f"{s['images']} PNGs of {s['size']} px, batches of {s['batch']}, shards of {s['shard']}"
    return [
        Row(
            "tokenize",
            f"the whole job vs a bare encode loop, {label}",
            f"{rate(s['images'], job_s)} images/s",
            f"{rate(s['images'], bare_s)} images/s (bare loop)",
            f"{overhead:+.1%} time over the bare loop",
            note=f"{torch.get_num_threads()} threads; job: listing, decoding in 1 worker, parquet, manifest",
            # At smoke sizes the job's fixed costs (loading, a worker's start) are all there is to measure.
            target="" if ctx.smoke else "overhead ≤ 10 %",
            verdict="" if ctx.smoke else verdict(overhead <= 0.10),
            values={"job_seconds": job, "bare_seconds": bare, "overhead": overhead},
        )
    ]


def processes_rows(ctx: BenchContext) -> list[Row]:
    """One process against two on the same cores. Each launch is a fresh `python -m mmtok tokenize`."""
    s = _setup(ctx)
    root = ctx.workdir / "tokenize"
    runs = {  # label: (processes, OMP_NUM_THREADS given to each; None: what the launcher sets)
        "1 process, 1 thread": (1, 1),
        "1 process, torch's default threads": (1, None),
        "2 processes (accelerate launch's defaults)": (2, None),
        "2 processes asked for all cores each (OMP_NUM_THREADS = cores)": (2, torch.get_num_threads()),
    }
    if ctx.smoke:
        runs = {label: runs[label] for label in list(runs)[1:3]}
    repeats = 1 if ctx.smoke else ctx.repeats
    results, reference, identical = {}, None, True
    for i, (label, (processes, threads)) in enumerate(runs.items()):
        manifests = []
        for r in range(repeats):
            out = root / f"launch{i}_{r}"
            manifests.append(launch(s["tok"], s["data"], out, s["batch"], s["shard"], processes, threads))
            rows = sorted_rows(out)
            reference = reference if reference is not None else rows
            identical &= rows == reference
        results[label] = {
            "images_per_s": statistics.median(m["run"]["samples_per_second"] for m in manifests),
            "cores_used": statistics.median(m["cores_used"] for m in manifests),
            "world_size": manifests[0]["run"]["world_size"],
        }
    base_label = next(iter(runs))
    base = results[base_label]["images_per_s"]
    rows = []
    for label, result in results.items():
        row = Row(
            "processes",
            f"2 processes on these cores: tokenize job, {label}",
            f"{result['images_per_s']:.1f} images/s",
            ratio=f"{times(result['images_per_s'], base)} of {base_label}",
            note=f"world size {result['world_size']}, got {result['cores_used']:.2f} cores; rows identical "
            f"across all launches: {'yes' if identical else 'NO'}",
            values={**result, "label": label},
        )
        if label.startswith("2 processes (") and not ctx.smoke:
            row.target = "2 processes ≥ 1.6× one (1 thread) and never slower than one with all cores"
            fastest_one = max(results[key]["images_per_s"] for key in results if key.startswith("1 process"))
            met = result["images_per_s"] >= 1.6 * base and result["images_per_s"] >= fastest_one
            row.verdict = verdict(met and identical)
        rows.append(row)
    return rows
