"""What a modality plugs into the trainer: its data, its reconstruction losses, its discriminator.

The trainer knows no modality. Each modality provides one Recipe subclass (images: image_recipe.py)
and registers it in recipes.py.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import Dataset

from mmtok.config import from_dict
from mmtok.train.losses import generator_loss


class Recipe:
    modality: ClassVar[str] = ""
    data_config_class: ClassVar[type] = object
    loss_config_class: ClassVar[type] = object  # the `loss.modality` section

    def __init__(self, data: dict, loss: Any, model: Any):
        """data: the `data` section; loss: the trainer's LossConfig; model: the tokenizer's config dataclass."""
        self.data = from_dict(self.data_config_class, data, "data")
        self.loss = loss
        self.terms = from_dict(self.loss_config_class, loss.modality, "loss.modality")
        self.model_config = model

    def build_dataset(self) -> Dataset:
        """Training items: tensors the tokenizer's forward takes."""
        raise NotImplementedError

    def build_discriminator(self) -> nn.Module | None:
        """The GAN phase's discriminator (returns logits, or a list of logits), or None."""
        return None

    def generator_adversarial(self, disc: nn.Module, x: torch.Tensor, recon: torch.Tensor, kind: str):
        """(adversarial generator loss, {name: (weight, loss)} of extra terms such as feature matching).
        `disc` is frozen: gradients reach `recon` only. The default suits a discriminator that returns logits."""
        return generator_loss(disc(recon), kind), {}

    def discriminator_logits(self, disc: nn.Module, x: torch.Tensor, fake: torch.Tensor):
        """(real logits, fake logits) from ONE discriminator forward (DDP expects one per backward)."""
        logits = disc(torch.cat([x, fake]))
        return logits.split([x.shape[0], fake.shape[0]])

    def reconstruction_losses(self, x: torch.Tensor, recon: torch.Tensor) -> dict[str, tuple[float, torch.Tensor]]:
        """{name: (weight, unweighted loss)} comparing the input and its reconstruction."""
        raise NotImplementedError

    def log_media(self, writer: Any, x: torch.Tensor, recon: torch.Tensor, step: int) -> None:
        """Writes a few inputs next to their reconstructions to a TensorBoard SummaryWriter."""
