"""The typed run config the trainer reads (YAML + dotted overrides, see mmtok.config)."""

from __future__ import annotations

import dataclasses
import inspect
import warnings
from pathlib import Path

import torch

from mmtok.config import ConfigError, apply_overrides, from_dict, load_yaml

# torch.optim classes a recipe may name; each takes lr and weight_decay, the Adam family betas too.
OPTIMIZERS = ("AdamW", "Adam", "NAdam", "RAdam", "Adamax", "SGD", "RMSprop", "Adagrad")


@dataclasses.dataclass
class OptimizerConfig:
    name: str = "AdamW"  # one of OPTIMIZERS
    lr: float = 2e-4
    betas: list[float] = dataclasses.field(default_factory=lambda: [0.5, 0.9])
    weight_decay: float = 0.0
    warmup_steps: int = 0
    schedule: str = "cosine"  # "cosine" decays to min_lr_ratio * lr at the end of training; "constant"
    min_lr_ratio: float = 0.1
    options: dict = dataclasses.field(default_factory=dict)  # further arguments of the class (SGD's momentum...)

    def __post_init__(self):
        if self.name not in OPTIMIZERS:
            raise ValueError(f"name must be one of {', '.join(OPTIMIZERS)}, got {self.name!r}")
        accepted = set(inspect.signature(getattr(torch.optim, self.name)).parameters) - {"params", "lr"}
        unknown = sorted(set(self.options) - accepted)
        if unknown:
            raise ValueError(f"options: {self.name} takes no {unknown[0]!r} (it takes {', '.join(sorted(accepted))})")
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if len(self.betas) != 2:
            raise ValueError("betas must have two values")

    def build(self, params) -> torch.optim.Optimizer:
        optimizer = getattr(torch.optim, self.name)
        arguments = {"lr": self.lr, "weight_decay": self.weight_decay}
        if "betas" in inspect.signature(optimizer).parameters:
            arguments["betas"] = tuple(self.betas)
        return optimizer(params, **arguments, **self.options)


@dataclasses.dataclass
class TrainConfig:
    max_steps: int = 1000
    # A wall-clock budget: training stops when it is spent (or at max_steps), and the learning-rate
    # schedule follows whichever of the two runs out first. None: steps only.
    max_minutes: float | None = None
    batch_size: int = 8
    grad_accum: int = 1
    grad_clip: float = 1.0  # 0 disables clipping
    mixed_precision: str = "no"  # "no", "bf16", "fp16"
    ema_decay: float = 0.999  # 0 disables the EMA of weights
    seed: int = 0
    num_workers: int = 0
    log_every: int = 10
    health_every: int = 50
    sample_every: int = 200  # steps between sample reconstructions written to the logs (every modality)
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    generator: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    discriminator: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)

    def __post_init__(self):
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise ValueError(f"mixed_precision must be 'no', 'bf16' or 'fp16', got {self.mixed_precision!r}")
        for name in (
            "max_steps",
            "batch_size",
            "grad_accum",
            "log_every",
            "health_every",
            "sample_every",
            "checkpoint_every",
            "keep_checkpoints",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")


@dataclasses.dataclass
class LossConfig:
    reconstruction: str = "l1"  # "l1" or "l2"
    reconstruction_weight: float = 1.0
    quantizer_weight: float = 1.0
    # Terms only one modality has (images: perceptual; audio: mel, STFT, feature matching),
    # typed by that modality recipe's loss dataclass.
    modality: dict = dataclasses.field(default_factory=dict)
    gan_start_step: int = -1  # -1: no GAN phase
    gan_loss: str = "hinge"  # "hinge" or "non_saturating"
    gan_weight: float = 0.1
    adaptive_gan_weight: bool = True
    lecam_weight: float = 0.0

    def __post_init__(self):
        if self.reconstruction not in ("l1", "l2"):
            raise ValueError(f"reconstruction must be 'l1' or 'l2', got {self.reconstruction!r}")
        if self.gan_loss not in ("hinge", "non_saturating"):
            raise ValueError(f"gan_loss must be 'hinge' or 'non_saturating', got {self.gan_loss!r}")

    @property
    def uses_gan(self) -> bool:
        return self.gan_start_step >= 0


@dataclasses.dataclass
class RunConfig:
    output_dir: str = "runs/default"
    # Typed by the model family's config dataclass and the modality recipe's data dataclass.
    model: dict = dataclasses.field(default_factory=lambda: {"family": "image"})
    data: dict = dataclasses.field(default_factory=dict)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)


# Keys of the train section that were renamed: old -> new. The old name is still read, with a
# FutureWarning (once per process), until it is removed.
RENAMED_TRAIN_KEYS = {"image_every": "sample_every"}
_warned_renamed: set[str] = set()


def load_run_config(path: str | Path | None, overrides: list[str] = ()) -> RunConfig:
    """Reads a YAML recipe (None: the defaults), applies `key.path=value` overrides, validates."""
    data = load_yaml(path) if path is not None else {}
    data = _renamed_keys(apply_overrides(data, list(overrides)))
    config = from_dict(RunConfig, data)
    validate_sections(config)
    return config


def validate_sections(config: RunConfig):
    """Types the model section by its family and the data and loss.modality sections by the family's
    recipe, without building the recipe (so no weights are loaded). Returns the model's config."""
    from mmtok.models.registry import family_of, recipe_class, tokenizer_class, tokenizer_config

    model = tokenizer_config(config.model)
    family = family_of(config.model)
    recipe_class(family).validate(config.data, config.loss, tokenizer_class(family).input_spec_for(model))
    return model


def _renamed_keys(data: dict) -> dict:
    """`data` (a copy, changed in place) with the train section's old key names replaced by the new."""
    train = data.get("train")
    if not isinstance(train, dict):
        return data
    for old, new in RENAMED_TRAIN_KEYS.items():
        if old not in train:
            continue
        if new in train:
            raise ConfigError(f"train.{old}: the old name of train.{new}; give only train.{new}")
        if old not in _warned_renamed:
            _warned_renamed.add(old)
            warnings.warn(f"train.{old} is deprecated: it is now train.{new}", FutureWarning, stacklevel=3)
        train[new] = train.pop(old)
    return data
