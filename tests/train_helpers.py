"""A tiny image-tokenizer recipe and data folder that train in seconds on CPU."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import yaml
from PIL import Image


def write_images(folder: Path, count: int, size: int = 40, seed: int = 0) -> list[Path]:
    """Smooth random colour images (gradients + blobs), so a tokenizer has something to learn."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size] / size
    paths = []
    for i in range(count):
        channels = [
            np.sin(2 * np.pi * (rng.uniform(0.5, 2) * xx + rng.uniform(0.5, 2) * yy + rng.uniform())) for _ in range(3)
        ]
        image = ((np.stack(channels, -1) + 1) * 127.5).astype(np.uint8)
        path = folder / f"img_{i:03d}.png"
        Image.fromarray(image).save(path)
        paths.append(path)
    return paths


TINY_IMAGE_MODEL = {
    "family": "image",
    "base_channels": 8,
    "channel_multipliers": [1, 2],
    "num_res_blocks": 1,
    "attention": False,
    "latent_dim": 4,
    "image_size": 16,
    "quantizer": {"kind": "fsq", "options": {"levels": [5, 5, 5, 5]}},
}
TINY_AUDIO_MODEL = {
    "family": "audio",
    "sample_rate": 16000,
    "base_channels": 8,
    "strides": [2, 4],
    "latent_dim": 8,
    "quantizer": {"kind": "rvq", "options": {"codebook_size": 64, "num_codebooks": 2}},
}


def tiny_config(output_dir: Path, data_dir: Path, **sections) -> dict:
    config = {
        "output_dir": str(output_dir),
        "model": copy.deepcopy(TINY_IMAGE_MODEL),
        "data": {"source": str(data_dir), "size": 16},
        "train": {
            "max_steps": 4,
            "batch_size": 2,
            "log_every": 1,
            "health_every": 2,
            "image_every": 2,
            "checkpoint_every": 2,
            "generator": {"lr": 1e-3},
        },
        "loss": {"reconstruction": "l1"},
    }
    for name, values in sections.items():
        if isinstance(values, dict):
            config.setdefault(name, {}).update(values)
        else:
            config[name] = values
    return config


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def read_metrics(output_dir: Path) -> list[dict]:
    import json

    lines = (Path(output_dir) / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]
