#!/usr/bin/env python
"""The Ray engine of `mmtok tokenize` against the accelerate engine and a bare encode loop, on the
same files, on this machine (a local Ray cluster of all its cores, started here and kept running
between jobs, as a deployed cluster would be). Run by `benchmarks/tokenize_shards.py --only ray`.

Rows:
- bare encode (every core's threads), the accelerate engine (`accelerate launch`, one process per
  core, one thread each) and the Ray engine (one actor per core, one thread each, decoding in
  threads of the actor as it does on a CPU-only cluster), throughput as each job reports it in manifest.json;
- the Ray engine with one actor SIGKILLed once the first shard is committed: it must finish, with
  rows identical to the accelerate engine's;
- the driver's peak memory for a listing of N and 8N small images: the ids never reach it;
- what --deterministic costs: the accelerate engine with and without it, on the images and on
  speech clips of many lengths.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

from mmtok.config import load_yaml
from mmtok.models import build_tokenizer, flavour
from mmtok.shards import read_manifest
from mmtok.tokenize import tokenize


def _job_command(tok_dir, data, out, batch, shard, *extra) -> list[str]:
    args = [str(tok_dir), str(data), str(out), "--batch-size", str(batch), "--shard-size", str(shard)]
    return [sys.executable, "-m", "mmtok", "tokenize", *args, *extra]


def run_driver(command: list[str], out: Path, kill_an_actor: bool = False) -> dict:
    """Runs a job's driver writing `out`; returns its manifest, its peak RSS (MiB), and after how
    many committed shards an actor was killed (with `kill_an_actor`)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    driver = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    killed = []
    if kill_an_actor:
        threading.Thread(target=_kill_an_actor_after_a_shard, args=(out, driver, killed)).start()
    stderr = driver.stderr.read()
    _, status, usage = os.wait4(driver.pid, 0)
    driver.returncode = os.waitstatus_to_exitcode(status)
    if driver.returncode:
        raise RuntimeError(stderr[-3000:])
    return {**read_manifest(out), "driver_rss_mib": usage.ru_maxrss / 1024, "killed": killed, "out": out}


def _kill_an_actor_after_a_shard(out: Path, driver, killed: list) -> None:
    while driver.poll() is None and not killed:
        pids = [
            int(p.name)
            for p in Path("/proc").iterdir()
            if p.name.isdigit() and _cmdline(p).find(b"ShardTokenizer") >= 0
        ]
        if pids and list(out.glob("shard-*.parquet")):
            os.kill(pids[0], signal.SIGKILL)
            killed.append(len(list(out.glob("shard-*.parquet"))))
        time.sleep(0.05)


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


def _accelerate(processes: int) -> list[str]:
    return [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
    ]  # fmt: skip


def measure(root: Path, *, images: int, repeats: int, setup: dict, write_images, sorted_rows, bare_seconds) -> dict:
    import ray

    cores = os.cpu_count() or 1
    ray.init(num_cpus=cores, logging_level="ERROR", include_dashboard=False)
    address = ray.get_runtime_context().gcs_address
    write_images(root / "data", images, setup["size"])
    torch.manual_seed(0)
    config = {"family": "image", "image_size": setup["size"], "attention": False, **setup["model"]}
    tok_dir = build_tokenizer(config).save_pretrained(root / "tok")
    batch, shard = setup["batch"], max(setup["batch"], images // (4 * cores))
    paths = sorted((root / "data").glob("*.png"))
    ray_args = ("--engine", "ray", "--ray-address", address)
    numbers: dict = {"images": images, "cores": cores, "batch": batch, "shard": shard}

    torch.set_num_threads(cores)
    numbers["bare_s"] = [bare_seconds(tok_dir, paths, batch, shard, "cpu") for _ in range(repeats)]
    accelerate, rays = [], []
    for r in range(repeats):  # alternate, so a slower minute of the machine hits both
        out = root / f"acc{r}"
        command = _job_command(tok_dir, root / "data", out, batch, shard, "--num-workers", "0")
        accelerate.append(run_driver([*_accelerate(cores), *command[1:]] if cores > 1 else command, out))
        out = root / f"ray{r}"
        rays.append(run_driver(_job_command(tok_dir, root / "data", out, batch, shard, *ray_args), out))
    out = root / "killed"
    killed = run_driver(_job_command(tok_dir, root / "data", out, batch, shard, *ray_args), out, kill_an_actor=True)
    reference = sorted_rows(accelerate[0]["out"])
    numbers |= {
        "accelerate": [m["run"]["samples_per_second"] for m in accelerate],
        "ray": [m["run"]["samples_per_second"] for m in rays],
        "killed": killed["run"]["samples_per_second"],
        "killed_after_shards": killed["killed"],
        "identical": all(sorted_rows(m["out"]) == reference for m in [*accelerate, *rays]),
        "identical_after_kill": sorted_rows(killed["out"]) == reference,
        "num_shards": killed["num_shards"],
    }
    numbers["driver_rss_mib"] = _driver_memory(root, ray_args, write_images)
    numbers["deterministic"] = _deterministic_cost(root, tok_dir, batch, shard, repeats)
    ray.shutdown()
    return numbers


def _driver_memory(root: Path, ray_args, write_images) -> dict:
    """The Ray driver's peak RSS for listings of N and 8N small images (a tiny tokenizer)."""
    torch.manual_seed(0)
    tok_dir = build_tokenizer(flavour("image")).save_pretrained(root / "tiny")
    rss = {}
    for count in (500, 4000):
        write_images(root / f"small{count}", count, 16)
        out = root / f"mem{count}"
        command = _job_command(tok_dir, root / f"small{count}", out, 64, 250, *ray_args)
        rss[count] = run_driver(command, out)["driver_rss_mib"]
    return rss


def _deterministic_cost(root: Path, tok_dir, batch: int, shard: int, repeats: int) -> dict:
    """Seconds of the accelerate engine (this process, all cores) without and with
    --deterministic: on the images, and on speech clips of many lengths (48 clips of 0.5-3 s, the
    24 kHz residual codec at its recipe's size), where inputs wait for their length bucket to fill."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    (root / "clips").mkdir()
    for i in range(48):
        length = int(rng.uniform(0.5, 3.0) * 24000)
        sf.write(root / "clips" / f"c{i:03d}.wav", rng.normal(0, 0.1, length).astype(np.float32), 24000)
    torch.manual_seed(0)
    recipe = load_yaml(Path(__file__).resolve().parent.parent / "configs" / "audio_rvq.yaml")
    codec = build_tokenizer(recipe["model"]).save_pretrained(root / "codec")
    cases = {"images": (tok_dir, root / "data", batch, shard), "speech": (codec, root / "clips", 16, 48)}
    cost = {}
    for name, (tok, data, batch_size, shard_size) in cases.items():
        seconds = {False: [], True: []}
        for r in range(repeats):
            for deterministic in (False, True):
                start = time.perf_counter()
                tokenize(
                    tok, data, root / f"det-{name}-{deterministic}-{r}", batch_size=batch_size,
                    shard_size=shard_size, num_workers=1, progress=False, deterministic=deterministic and batch_size,
                )  # fmt: skip
                seconds[deterministic].append(time.perf_counter() - start)
        cost[name] = {
            "default_s": statistics.median(seconds[False]),
            "deterministic_s": statistics.median(seconds[True]),
            "batch": batch_size,
            "shard": shard_size,
        }
    return cost


def print_ray_rows(numbers: dict) -> None:
    bare = statistics.median(numbers["bare_s"])
    images, cores = numbers["images"], numbers["cores"]
    acc, ray_rate = statistics.median(numbers["accelerate"]), statistics.median(numbers["ray"])
    print(
        f"\n# Ray engine: {images} PNGs, batches of {numbers['batch']}, shards of {numbers['shard']}, a local Ray "
        f"cluster of {cores} CPUs; median of {len(numbers['ray'])}\n"
    )
    print("| measurement | images/s |")
    print("|---|---|")
    print(f"| bare encode loop ({cores} threads, pre-decoded batches) | {images / bare:.1f} |")
    print(f"| accelerate engine, {cores} processes x 1 thread | {acc:.1f} |")
    print(f"| ray engine, {cores} actors x 1 thread, each decoding in threads beside it | {ray_rate:.1f} |")
    print(f"| ray engine, one actor killed after {numbers['killed_after_shards']} committed shard(s) | "
          f"{numbers['killed']:.1f} |")  # fmt: skip
    ratio = ray_rate / acc
    print("\n## targets (Ray engine)\n")
    print(f"- ray / accelerate: {ratio:.2f} (target >= 0.85): {'met' if ratio >= 0.85 else 'NOT met'}")
    print(f"- rows of every accelerate and ray run identical: {'yes' if numbers['identical'] else 'NO'}")
    verdict = "yes" if numbers["identical_after_kill"] and numbers["killed_after_shards"] else "NO"
    print(f"- a killed actor: the job finished with identical rows: {verdict}")
    rss = numbers["driver_rss_mib"]
    print(f"- driver peak RSS: {rss[500]:.0f} MiB for 500 images, {rss[4000]:.0f} MiB for 4000")
    for name, cost in numbers["deterministic"].items():
        extra = cost["deterministic_s"] / cost["default_s"] - 1
        print(
            f"- --deterministic {cost['batch']} on the {name} (batches of {cost['batch']}, shards of {cost['shard']}):"
            f" {cost['default_s']:.2f} s -> {cost['deterministic_s']:.2f} s ({extra * 100:+.0f} %)"
        )
    print(f"\nruns (images/s): accelerate {[round(x, 1) for x in numbers['accelerate']]}, "
          f"ray {[round(x, 1) for x in numbers['ray']]}")  # fmt: skip
