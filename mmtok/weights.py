"""Reading a state dict from a local file without unpickling code: safetensors, or a tensors-only
torch file (`torch.load(weights_only=True)`). The perceptual loss (mmtok.train.perceptual) and the
eval metrics that need weights (LPIPS, FID: mmtok.eval.metrics.perceptual) read theirs with it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A flat {name: tensor} mapping on the CPU from `path` (a checkpoint's {"state_dict": ...}
    wrapper is unwrapped); ValueError when the file holds anything else."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()
    ):
        raise ValueError(f"{path} does not hold a flat state dict of tensors")
    return dict(loaded)
