"""What a modality plugs into the trainer: its data, its reconstruction losses, its discriminator.

The trainer knows no modality. Each tokenizer family names its Recipe subclass in the registry
(mmtok.models.registry); image and image1d share image_recipe.py, and audio, video, EEG and ECG
have audio_recipe.py, video_recipe.py, eeg_recipe.py and ecg_recipe.py.
Validating a config types a recipe's sections without building it (`Recipe.validate`), so it
loads no weights; building a recipe is for training.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import Dataset

from mmtok.config import from_dict
from mmtok.data.spec import InputSpec
from mmtok.train.losses import generator_loss


class Recipe:
    modality: ClassVar[str] = ""
    data_config_class: ClassVar[type] = object
    loss_config_class: ClassVar[type] = object  # the `loss.modality` section

    def __init__(self, data: dict, loss: Any, model: Any, input_spec: InputSpec):
        """data: the `data` section; loss: the trainer's LossConfig; model: the tokenizer's config
        dataclass; input_spec: how the tokenizer prepares media (the datasets prepare them so too)."""
        self.data, self.terms = self.validate(data, loss, input_spec)
        self.loss, self.model_config, self.input_spec = loss, model, input_spec

    @classmethod
    def validate(cls, data: dict, loss: Any, input_spec: InputSpec) -> tuple[Any, Any]:
        """The typed `data` and `loss.modality` sections; errors name the key. Builds nothing."""
        return from_dict(cls.data_config_class, data, "data"), from_dict(
            cls.loss_config_class, loss.modality, "loss.modality"
        )

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
