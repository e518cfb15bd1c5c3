"""A tiny image-tokenizer recipe and data folder that train in seconds on CPU."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

from mmtok.models import flavour


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


# The registry's "tiny" flavours: the same small models everywhere (tests, smoke runs).
TINY_IMAGE_MODEL = flavour("image")
TINY_IMAGE1D_MODEL = flavour("image1d")
TINY_AUDIO_MODEL = flavour("audio")


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
            "sample_every": 2,
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


TWO_PROCESS_SCRIPT = """
import sys, torch, torch.distributed as dist
from safetensors.torch import save_file
from mmtok.train.config import load_run_config
from mmtok.train.trainer import Trainer
from mmtok.models import build_tokenizer
from accelerate.utils import set_seed
config = load_run_config(sys.argv[1], [])
set_seed(config.train.seed)  # as the Trainer does: the codebook every process starts from
initial = build_tokenizer(config.model).quantizer.codebook.clone()
trainer = Trainer(config)
trainer.fit()
acc = trainer.accelerator
state = {f"tokenizer.{k}": v for k, v in trainer.unwrapped.state_dict().items()}
state.update({f"disc.{k}": v for k, v in acc.unwrap_model(trainer.disc).state_dict().items()})
state["world_size"] = torch.tensor(trainer.world_size_seen)
state["initial_codebook"] = initial
save_file({k: v.contiguous() for k, v in state.items()}, f"{sys.argv[2]}/rank{acc.process_index}.safetensors")
"""


def train_in_two_processes(config_file: Path, tmp_path: Path) -> list[dict]:
    """Trains `config_file` in two gloo processes under `accelerate launch`; returns each rank's
    tokenizer and discriminator weights, world size and initial codebook (TWO_PROCESS_SCRIPT)."""
    from safetensors.torch import load_file

    script = tmp_path / "two.py"
    script.write_text(TWO_PROCESS_SCRIPT)
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2"]
    launch += ["--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        [*launch, str(script), str(config_file), str(tmp_path)], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [load_file(tmp_path / f"rank{rank}.safetensors") for rank in range(2)]


def assert_identical_ranks(rank0: dict, rank1: dict) -> None:
    assert int(rank0["world_size"]) == int(rank1["world_size"]) == 2
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), f"{name} differs between the two processes"
