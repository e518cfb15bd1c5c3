"""The pretrained-adapter row of benchmarks/tokenize_shards.py: a transformers EnCodec (the 24 kHz
architecture, random weights, 6 kbps: 8 codebooks) converted with `mmtok convert`, tokenizing a
folder of WAV clips three ways:

1. bare: the model's own `encode` in a loop over pre-decoded batches (the batches the job makes);
2. the whole `mmtok tokenize` job on the files (model loading, decoding in DataLoader workers,
   encoding through the adapter, parquet shards and manifest included);
3. a plain per-file script: read a clip, call the model's `encode` on it alone, collect the codes,
   write one parquet file at the end.

Targets: the job within 10 % of bare encoding, and faster than the per-file script.
"""

from __future__ import annotations

import statistics
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

BANDWIDTH = 6.0  # kbps: 8 codebooks of 1024 at 75 frames per second
# Clips per encode call. On CPU, batches of 2 s clips beyond a few spill the convolutions' working
# set out of cache (measured: 16 clips took 7.5 s in batches of 16, 4.8 s in batches of 4, 6.7 s alone).
BATCH = {"cpu": 4, "cuda": 64}


def write_clips(folder: Path, count: int, seconds: float, rate: int = 24000) -> list[Path]:
    """Chirps with noise, as 16-bit WAV files."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    paths = []
    for i in range(count):
        f0, f1 = rng.uniform(100, 400), rng.uniform(800, 3000)
        wave = 0.3 * np.sin(2 * np.pi * (f0 + (f1 - f0) * t / seconds) * t) + 0.02 * rng.normal(size=t.shape)
        paths.append(folder / f"clip_{i:05d}.wav")
        sf.write(paths[-1], wave.astype(np.float32), rate, subtype="PCM_16")
    return paths


def converted_encodec(root: Path) -> tuple[torch.nn.Module, Path]:
    import transformers

    from mmtok.pretrained import convert

    torch.manual_seed(0)
    model = transformers.EncodecModel(transformers.EncodecConfig()).eval()
    model.save_pretrained(root / "encodec")
    return model, convert(root / "encodec", root / "encodec-mmtok", bandwidth=BANDWIDTH)


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def bare_seconds(model, paths: list[Path], batch: int, shard: int, device: str) -> float:
    batches = []
    for start in range(0, len(paths), shard):
        items = paths[start : start + shard]
        for i in range(0, len(items), batch):
            waves = [sf.read(p, dtype="float32")[0] for p in items[i : i + batch]]
            batches.append(torch.from_numpy(np.stack(waves))[:, None])
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else nullcontext()
    with torch.inference_mode(), autocast:
        model.encode(batches[0].to(device), bandwidth=BANDWIDTH)  # warm-up
        _sync(device)
        start = time.perf_counter()
        for x in batches:
            model.encode(x.to(device, non_blocking=True), bandwidth=BANDWIDTH).audio_codes.cpu()
        _sync(device)
    return time.perf_counter() - start


def per_file_seconds(model, paths: list[Path], out: Path, device: str) -> float:
    import pyarrow as pa
    import pyarrow.parquet as pq

    start = time.perf_counter()
    rows = []
    with torch.inference_mode():
        for path in paths:
            wave, _ = sf.read(path, dtype="float32")
            codes = model.encode(torch.from_numpy(wave)[None, None].to(device), bandwidth=BANDWIDTH).audio_codes
            rows.append({"key": path.name, "codes": codes[0, 0].T.flatten().cpu().numpy().astype(np.uint16)})
    pq.write_table(pa.Table.from_pylist(rows), out)
    return time.perf_counter() - start


def job_seconds(tok_dir: Path, data: Path, out: Path, batch: int, shard: int, workers: int) -> float:
    from mmtok.tokenize import tokenize

    start = time.perf_counter()
    tokenize(tok_dir, data, out, batch_size=batch, shard_size=shard, num_workers=workers, progress=False)
    return time.perf_counter() - start


def measure(root: Path, *, clips: int, seconds: float, shard: int, workers: int, repeats: int) -> dict:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    batch = BATCH[device]
    paths = write_clips(root / "clips", clips, seconds)
    model, tok_dir = converted_encodec(root)
    model.to(device)
    bare, job, per_file = [], [], []
    for r in range(repeats):
        bare.append(bare_seconds(model, paths, batch, shard, device))
        job.append(job_seconds(tok_dir, root / "clips", root / f"job{r}", batch, shard, workers))
        per_file.append(per_file_seconds(model, paths, root / f"per-file{r}.parquet", device))
    return {
        "clips": clips,
        "seconds": seconds,
        "device": device,
        "batch": batch,
        "bare_s": bare,
        "job_s": job,
        "per_file_s": per_file,
        "bare": statistics.median(bare),
        "job": statistics.median(job),
        "per_file": statistics.median(per_file),
    }
