#!/usr/bin/env python
"""Peak memory of `mmtok tokenize` against the length of one input: it should not grow.

    python benchmarks/tokenize_memory.py                 # audio 1, 10, 60 min; video 10 s, 2 min, 10 min
    python benchmarks/tokenize_memory.py --quick         # shorter inputs, a minute or two in all
    python benchmarks/tokenize_memory.py --workers 0 4   # also with DataLoader workers
    python benchmarks/tokenize_memory.py --only audio --json memory.json

Each case tokenizes a folder holding one generated file (a 24 kHz mono WAV of noise and tones, or a
64x64 30 fps H.264 video of moving colours) with a random-weight tokenizer of the default audio
codec and video tokenizer architectures, made small (few channels) so that an hour of audio takes
a minute or so on two CPU cores; the memory that streaming bounds is the input's and the
activations', which a small model shows as well as a large one. Every case is `mmtok tokenize` in
its own subprocess, measured two ways:

- `max RSS`: the largest resident set of any one process of the job (the job or a DataLoader
  worker), from the kernel's accounting of the reaped child (os.wait4), exact;
- `tree RSS`: the largest sum of the resident sets of the job's process tree, polled every
  20 ms with psutil (shared pages of forked workers count once per process, so it overstates
  what workers really add; a spike shorter than the poll can be missed).

Output is a Markdown table per modality and worker count, and the ratio of the longest input's
peak to the shortest's, the target being at most 1.10 (flat within 10 %). A case whose job does
not write its input as one row (an error line instead) is marked, since its memory then says
nothing about encoding.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from mmtok.modalities import MODALITIES
from mmtok.models import build_tokenizer

SAMPLE_RATE = 24000  # the default codec's
FPS, FRAME_SIDE = 30, 64
FULL = {"audio": [60.0, 600.0, 3600.0], "video": [10.0, 120.0, 600.0]}  # seconds
QUICK = {"audio": [15.0, 60.0, 240.0], "video": [5.0, 20.0, 60.0]}
# The default architectures (strides, kernels, multipliers, attention, quantizers), with few channels.
AUDIO_MODEL = {"family": "audio", "base_channels": 4}
VIDEO_MODEL = {"family": "video", "base_channels": 8, "image_size": FRAME_SIDE, "pad_frames": True}
POLL_SECONDS = 0.02


def write_wav(path: Path, seconds: float, seed: int = 0) -> Path:
    """24 kHz mono 16-bit PCM: noise under a few tones, written block by block."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    total, block = round(seconds * SAMPLE_RATE), 10 * SAMPLE_RATE
    with sf.SoundFile(path, "w", SAMPLE_RATE, 1, subtype="PCM_16") as f:
        for start in range(0, total, block):
            t = (start + np.arange(min(block, total - start))) / SAMPLE_RATE
            tones = sum(0.1 * np.sin(2 * np.pi * freq * t) for freq in (220.0, 347.0, 1210.0))
            f.write((tones + 0.05 * rng.standard_normal(len(t))).astype(np.float32))
    return path


def write_video(path: Path, seconds: float) -> Path:
    """64x64 H.264 at 30 fps: colour waves drifting frame by frame, encoded as they are made."""
    import av

    yy, xx = np.mgrid[0:FRAME_SIDE, 0:FRAME_SIDE] / FRAME_SIDE
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(FPS))
        stream.width = stream.height = FRAME_SIDE
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "23"}
        for index in range(round(seconds * FPS)):
            phase = index / FPS
            planes = [np.sin(2 * np.pi * (xx + yy * (c + 1) + 0.3 * phase + c / 3)) for c in range(3)]
            pixels = ((np.stack(planes, -1) + 1) * 127.5).astype(np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def make_tokenizer(config: dict, folder: Path) -> Path:
    import torch

    torch.manual_seed(0)
    return build_tokenizer(config).eval().save_pretrained(folder)


class TreeRss:
    """The largest sum of the RSS of a process and its descendants, polled in a thread."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._done = pid, 0, threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._done.is_set():
            total = 0
            try:
                for process in [root, *root.children(recursive=True)]:
                    try:
                        total += process.memory_info().rss
                    except psutil.NoSuchProcess:
                        pass
            except psutil.NoSuchProcess:
                return
            self.peak = max(self.peak, total)
            self._done.wait(POLL_SECONDS)

    def stop(self) -> int:
        self._done.set()
        self._thread.join()
        return self.peak


def run_case(tokenizer: Path, input_dir: Path, output_dir: Path, workers: int) -> dict:
    """`mmtok tokenize` in a subprocess: its peak RSS (MiB) both ways, time, and what it wrote."""
    command = [sys.executable, "-m", "mmtok", "tokenize", str(tokenizer), str(input_dir), str(output_dir)]
    command += ["--num-workers", str(workers), "--batch-size", "1"]
    environment = {**os.environ, "TQDM_DISABLE": "1"}
    started = time.perf_counter()
    process = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        import psutil  # noqa: F401

        tree = TreeRss(process.pid)
    except ImportError:
        tree = None
    output = process.stdout.read().decode(errors="replace")
    # wait4: the reaped job's own accounting, which includes the workers it reaped (RUSAGE_CHILDREN of
    # this benchmark would keep the largest job so far, not this one's).
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    tree_peak = tree.stop() if tree is not None else None
    counts, reasons = {}, []
    manifest = output_dir / "manifest.json"
    if manifest.is_file():
        counts = json.loads(manifest.read_text())["counts"]
        errors = output_dir / "errors.jsonl"
        if errors.is_file():
            reasons = [json.loads(line)["reason"] for line in errors.read_text().splitlines()]
    return {
        "exit_code": process.returncode,
        "max_rss_mib": usage.ru_maxrss / 1024,  # Linux reports KiB
        "tree_rss_mib": None if tree_peak is None else tree_peak / 2**20,
        "seconds": seconds,
        "rows": counts.get("samples"),
        "errors": counts.get("errors"),
        "error_reasons": reasons,
        "log_tail": output.strip().splitlines()[-3:],
    }


def label(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"


def print_table(modality: str, workers: int, cases: list[tuple[float, dict]]) -> dict:
    print(f"\n### {modality}, --num-workers {workers}\n")
    print("| duration | max RSS (MiB) | tree RSS (MiB) | seconds | rows / errors |")
    print("|---|---|---|---|---|")
    for seconds, result in cases:
        tree = "n/a" if result["tree_rss_mib"] is None else f"{result['tree_rss_mib']:.0f}"
        wrote = f"{result['rows']} / {result['errors']}" if result["rows"] is not None else "no manifest"
        if result["exit_code"] != 0:
            wrote += f" (exit {result['exit_code']}: {' '.join(result['log_tail'])[-160:]})"
        elif result["errors"]:
            wrote += f" (not encoded: {result['error_reasons'][0][:120]})"
        row = f"| {label(seconds)} | {result['max_rss_mib']:.0f} | {tree} | {result['seconds']:.1f} | {wrote} |"
        print(row)
    first, last = cases[0][1], cases[-1][1]
    ratio = last["max_rss_mib"] / first["max_rss_mib"]
    encoded = all(r["exit_code"] == 0 and r["rows"] == 1 for _, r in cases)
    verdict = ("flat" if ratio <= 1.10 else "grows") if encoded else "not comparable: an input was not encoded"
    print(f"\nlongest / shortest max RSS: {ratio:.2f} ({verdict}; target <= 1.10)")
    if first["tree_rss_mib"] and last["tree_rss_mib"]:
        print(f"longest / shortest tree RSS: {last['tree_rss_mib'] / first['tree_rss_mib']:.2f}")
    return {"ratio": ratio, "all_encoded": encoded, "cases": [{"seconds": s, **r} for s, r in cases]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"durations {QUICK} instead of {FULL} (seconds)")
    parser.add_argument("--only", choices=("audio", "video"), default=None, help="one modality")
    parser.add_argument("--workers", type=int, nargs="+", default=[0], help="--num-workers values (default: 0)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--keep", type=Path, default=None, help="generate inputs and outputs here and keep them")
    args = parser.parse_args()

    durations = QUICK if args.quick else FULL
    modalities = [args.only] if args.only else ["audio", "video"]
    results: dict = {}
    with tempfile.TemporaryDirectory() as scratch:
        root = args.keep or Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        print(f"# `mmtok tokenize` peak memory against input length (inputs in {root})")
        print(
            f"audio: {AUDIO_MODEL}; video: {VIDEO_MODEL}; threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}"
        )
        for modality in modalities:
            model, write_input = {"audio": (AUDIO_MODEL, write_wav), "video": (VIDEO_MODEL, write_video)}[modality]
            tokenizer = make_tokenizer(model, root / f"{modality}_tok")
            inputs = {}
            for seconds in durations[modality]:
                folder = root / f"{modality}_{seconds:g}s"
                folder.mkdir(exist_ok=True)
                started = time.perf_counter()
                write_input(folder / f"input{MODALITIES[modality].sample_suffix}", seconds)
                size = sum(p.stat().st_size for p in folder.iterdir()) / 2**20
                print(f"made {label(seconds)} of {modality}: {size:.1f} MiB in {time.perf_counter() - started:.1f} s")
                inputs[seconds] = folder
            for workers in args.workers:
                cases = []
                for seconds, folder in inputs.items():
                    out = root / f"out_{modality}_{seconds:g}s_w{workers}"
                    cases.append((seconds, run_case(tokenizer, folder, out, workers)))
                results[f"{modality}/workers={workers}"] = print_table(modality, workers, cases)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    failed = [name for name, r in results.items() if any(c["exit_code"] for c in r["cases"])]
    if failed:
        print(f"\njobs that failed: {failed}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
