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


class Recipe:
    modality: ClassVar[str] = ""
    data_config_class: ClassVar[type] = object

    def __init__(self, data: dict, loss: Any):
        self.data = from_dict(self.data_config_class, data, "data")
        self.loss = loss

    def build_dataset(self) -> Dataset:
        """Training items: tensors the tokenizer's forward takes."""
        raise NotImplementedError

    def build_discriminator(self) -> nn.Module | None:
        """The GAN phase's discriminator (returns logits, or a list of logits), or None."""
        return None

    def reconstruction_losses(self, x: torch.Tensor, recon: torch.Tensor) -> dict[str, tuple[float, torch.Tensor]]:
        """{name: (weight, unweighted loss)} comparing the input and its reconstruction."""
        raise NotImplementedError

    def log_media(self, writer: Any, x: torch.Tensor, recon: torch.Tensor, step: int) -> None:
        """Writes a few inputs next to their reconstructions to a TensorBoard SummaryWriter."""
