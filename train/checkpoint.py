"""Checkpoints written atomically: a job killed at any moment leaves only complete checkpoints.

Accelerate's save_state writes model, optimizers, schedulers, scaler, RNG states and the
registered objects (EMA, LeCam); trainer_state.json adds the step and the data position. The
folder is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from safetensors.torch import save_file

CHECKPOINT_PATTERN = re.compile(r"^step_(\d{8})$")
STATE_FILE = "trainer_state.json"
MODEL_FILE = "model.safetensors"  # accelerate's name for the first prepared model (the tokenizer)
EMA_FILE = "ema.safetensors"


def checkpoint_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The complete checkpoint with the highest step (temporary folders are ignored)."""
    root = checkpoint_dir(output_dir)
    if not root.is_dir():
        return None
    found = [
        (int(m.group(1)), p)
        for p in root.iterdir()
        if (m := CHECKPOINT_PATTERN.match(p.name)) and (p / STATE_FILE).is_file()
    ]
    return max(found)[1] if found else None


def save_checkpoint(
    accelerator, output_dir: str | Path, step: int, trainer_state: dict, keep: int, ema_state: dict | None = None
) -> Path:
    """Every process calls this (accelerate saves per-process RNG states). The EMA weights go to
    their own safetensors file, which resume and `mmtok export --ema` read without unpickling."""
    root = checkpoint_dir(output_dir)
    final = root / f"step_{step:08d}"
    partial = root / f"step_{step:08d}.partial"
    if accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
        root.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if ema_state is not None:
            save_file({k: v.detach().cpu().contiguous() for k, v in ema_state.items()}, str(partial / EMA_FILE))
        (partial / STATE_FILE).write_text(json.dumps(trainer_state, indent=2))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)  # the atomic step: a checkpoint exists whole or not at all
        _prune(root, keep)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(accelerator, path: Path) -> dict:
    accelerator.load_state(str(path))
    return json.loads((path / STATE_FILE).read_text())


def _prune(root: Path, keep: int) -> None:
    # Not Accelerate's automatic_checkpoint_naming + total_limit: it writes into the final folder
    # (a kill leaves a half checkpoint that looks whole), names folders by its own save counter
    # rather than the training step, and would prune around our atomic rename.
    steps = sorted((int(m.group(1)), p) for p in root.iterdir() if (m := CHECKPOINT_PATTERN.match(p.name)))
    for _, path in steps[:-keep]:
        shutil.rmtree(path, ignore_errors=True)
