"""`mmtok export RUN_DIR OUT_DIR [--ema]`: a training run's latest checkpoint -> a frozen artifact."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file

from mmtok.config import load_yaml
from mmtok.models.registry import build_tokenizer
from mmtok.train.checkpoint import EMA_FILE, MODEL_FILE, STATE_FILE, latest_checkpoint

EMA_PREFIX = "averaged.module."  # WeightEMA keeps the averaged copy under this name


def export_run(run_dir: str | Path, out_dir: str | Path, *, use_ema: bool = False) -> Path:
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{run_dir} is not a training run: config.yaml is missing")
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise FileNotFoundError(f"{run_dir} has no complete checkpoint to export")
    # Only the model section: exporting needs nothing that only training uses (data, perceptual weights).
    run_config = load_yaml(run_dir / "config.yaml")
    tokenizer = build_tokenizer(run_config["model"])
    if use_ema:
        if not (checkpoint / EMA_FILE).is_file():
            raise FileNotFoundError(f"{checkpoint} holds no EMA weights (train.ema_decay was 0); export without --ema")
        ema = load_file(str(checkpoint / EMA_FILE))
        state = {k[len(EMA_PREFIX) :]: v for k, v in ema.items() if k.startswith(EMA_PREFIX)}
    else:
        state = load_file(str(checkpoint / MODEL_FILE))
    tokenizer.load_state_dict(state, strict=True)

    trainer_state = json.loads((checkpoint / STATE_FILE).read_text())
    card = {
        "training_data": run_config.get("data", {}).get("source", "?"),
        "steps": trainer_state["step"],
        "weights": "EMA" if use_ema else "raw",
        "eval": _eval_numbers(run_dir),
    }
    return tokenizer.save_pretrained(out_dir, card=card)


def _eval_numbers(run_dir: Path) -> dict:
    """Mean metrics from an evaluation report the run left (e.g. the quickstart's), if any."""
    report = run_dir / "quickstart_report.json"
    if not report.is_file():
        return {}
    return {f"held-out {k}": v for k, v in json.loads(report.read_text()).get("mean", {}).items()}
