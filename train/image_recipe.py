"""Training images: crops of a folder/tar/parquet (or scikit-image's photos), L1/L2 + perceptual
losses, and a PatchGAN discriminator."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch
from torch.utils.data import Dataset

from mmtok.config import ConfigError
from mmtok.data import ImageDataset, sample_images, write_sample_images
from mmtok.data.sample_images import DEFAULT_HELD_OUT
from mmtok.models.image import split_chroma
from mmtok.train.discriminators import PatchGANDiscriminator
from mmtok.train.losses import reconstruction_loss
from mmtok.train.perceptual import build_perceptual_loss
from mmtok.train.recipe import Recipe

SAMPLE_IMAGES = "sample-images"


@dataclasses.dataclass
class ImageDataConfig:
    source: str = SAMPLE_IMAGES  # a folder, .tar or .parquet; "sample-images": scikit-image's photos
    size: int | None = None  # training crop size; default: the model's image_size
    held_out: int = DEFAULT_HELD_OUT  # sample-images only: photos kept out of training, for evaluation
    random_flip: bool = True
    # Probability that a training crop's colours are rotated about the gray axis by a random angle
    # (mmtok.data.images.rotate_hue): for small or mostly gray training sets, so every hue is seen.
    hue_rotation: float = 0.0
    # Each crop comes from the photo resized by a random factor in [min_scale, 1] (never below the
    # crop size): a few large photos then also teach the detail density of smaller ones.
    min_scale: float = 1.0
    # Probability that a crop (one not hue-rotated) is turned gray: gray photos must come back gray.
    grayscale: float = 0.0
    cache_dir: str = "runs/sample-images"  # where sample-images are written as PNG files


@dataclasses.dataclass
class ImageLossConfig:
    perceptual_weight: float = 0.0
    # Weight of the reconstruction's distance from gray (L1 of its chroma) on gray inputs: the plain
    # loss leaves a few levels of chroma noise on gray photos, small beside their luma error.
    gray_weight: float = 0.0
    perceptual_weights: str | None = None  # local path; no weights means no perceptual loss


def sample_image_split(held_out: int) -> tuple[list, list]:
    """(train, held) lists of (name, uint8 HxWx3) from scikit-image's photos."""
    if held_out == 0:
        return sample_images(), []
    return sample_images(held_out=held_out)


def image_folder(source: str, held_out: int, cache_dir: str) -> Path:
    """A folder/tar/parquet of images as given, or for "sample-images" a folder of scikit-image's
    photos written under `cache_dir`, the `held_out` ones left out."""
    if source != SAMPLE_IMAGES:
        return Path(source)
    train, _ = sample_image_split(held_out)
    folder = Path(cache_dir) / f"train-heldout{held_out}"
    write_sample_images(folder, [name for name, _ in train])
    return folder


def gray_chroma_loss(x: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the reconstruction's L1 distance from gray, counted on gray inputs only
    (all channels equal within one level of 8 bits); 0 for a batch without them."""
    gray = split_chroma(x)[1].abs().amax(dim=(1, 2, 3)) <= 1 / 127.5
    chroma = split_chroma(recon)[1].abs().mean(dim=(1, 2, 3))
    return (chroma * gray.to(chroma.dtype)).mean()


class ImageRecipe(Recipe):
    modality = "image"
    data_config_class = ImageDataConfig
    loss_config_class = ImageLossConfig

    @classmethod
    def validate(cls, data, loss, input_spec):
        typed, terms = super().validate(data, loss, input_spec)
        # Images are upscaled to min_side (the model's image_size) before they are cropped, and
        # the artifact records only that: a larger crop would need an upscaling nobody records.
        if typed.size is None:
            typed.size = input_spec.crop_size or input_spec.min_side
        if typed.size > input_spec.min_side or (input_spec.crop_size and typed.size != input_spec.crop_size):
            exact = "equal" if input_spec.crop_size else "be at most"
            raise ConfigError(
                f"data.size: training crops of {typed.size} px must {exact} model.image_size "
                f"({input_spec.min_side}); leave data.size out to use image_size"
            )
        return typed, terms

    def __init__(self, data: dict, loss, model, input_spec):
        super().__init__(data, loss, model, input_spec)
        self._perceptual = None
        if self.terms.perceptual_weight > 0:
            self._perceptual = build_perceptual_loss(
                self.terms.perceptual_weights
            )  # None (and a log line) without weights

    def training_source(self) -> Path:
        return image_folder(self.data.source, self.data.held_out, self.data.cache_dir)

    def build_dataset(self) -> Dataset:
        return ImageDataset(
            self.training_source(),
            size=self.data.size,
            spec=self.input_spec,
            random_flip=self.data.random_flip,
            hue_rotation=self.data.hue_rotation,
            min_scale=self.data.min_scale,
            grayscale=self.data.grayscale,
        )

    def build_discriminator(self):
        # pix2pix's 3 layers, fewer for small crops: each layer halves the patch grid, and the two
        # closing 4x4 convolutions need at least 3x3 of it.
        layers = max(1, min(3, int(math.log2(self.data.size / 3))))
        return PatchGANDiscriminator(in_channels=self.input_spec.channels, num_layers=layers)

    def reconstruction_losses(self, x, recon):
        losses = {
            self.loss.reconstruction: (
                self.loss.reconstruction_weight,
                reconstruction_loss(recon, x, self.loss.reconstruction),
            )
        }
        if self.terms.gray_weight > 0:
            losses["gray"] = (self.terms.gray_weight, gray_chroma_loss(x, recon))
        if self._perceptual is not None:
            self._perceptual.to(x.device)
            losses["perceptual"] = (self.terms.perceptual_weight, self._perceptual(recon, x))
        return losses

    def log_media(self, writer, x, recon, step):
        from torchvision.utils import make_grid

        pairs = torch.stack([x[:4], recon[:4]], dim=1).flatten(0, 1)  # input, reconstruction, input, ...
        grid = make_grid(((pairs.float().clamp(-1, 1) + 1) / 2).cpu(), nrow=2)
        writer.add_image("reconstructions", grid, step)
