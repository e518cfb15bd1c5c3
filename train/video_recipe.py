"""Training video tokenizers: random clips of a folder of videos (still images mixed in when asked),
L1/L2 and per-frame perceptual losses, and a 3-D or per-frame PatchGAN discriminator."""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn
from torch.utils.data import Dataset

from mmtok.config import ConfigError
from mmtok.data.video import StillsAndClips, VideoDataset
from mmtok.data.video_io import frame_count_problem
from mmtok.models.video import as_frames
from mmtok.train.discriminators import PatchGANDiscriminator
from mmtok.train.image_recipe import image_folder
from mmtok.train.losses import reconstruction_loss
from mmtok.train.perceptual import build_perceptual_loss
from mmtok.train.recipe import Recipe

DISCRIMINATORS = ("3d", "frames")


@dataclasses.dataclass
class VideoDataConfig:
    source: str = "data_cache/video"  # a folder, .tar, .parquet or glob of videos (scripts/fetch_data.sh)
    frames: int = 17  # frames per training clip: 1 + k * model.temporal_factor
    size: int | None = None  # training crop size; default: the model's image_size
    random_flip: bool = True
    # As the image recipe's: a share of clips (and stills) get their hues turned by a random angle,
    # the same on every frame, so a few videos' palettes do not become the only colours the codes know;
    # of the rest a share turn gray, which must come back gray.
    hue_rotation: float = 0.0
    grayscale: float = 0.0
    # Still images mixed in (an image is a one-frame video): a folder/tar/parquet, or
    # "sample-images" (scikit-image's photos minus `held_out`); a share `still_fraction` of items.
    stills: str | None = None
    still_fraction: float = 0.0
    held_out: int = 5
    cache_dir: str = "runs/sample-images"


@dataclasses.dataclass
class VideoLossConfig:
    perceptual_weight: float = 0.0  # LPIPS-style distance on every frame
    perceptual_weights: str | None = None  # local path; no weights means no perceptual loss
    discriminator: str = "3d"  # "3d": space-time patches; "frames": a 2-D PatchGAN on each frame
    discriminator_channels: int = 64

    def __post_init__(self):
        if self.discriminator not in DISCRIMINATORS:
            raise ValueError(f"discriminator must be one of {DISCRIMINATORS}, got {self.discriminator!r}")


class PerFrameDiscriminator(nn.Module):
    """A 2-D discriminator applied to every frame of (B, C, T, H, W) clips: logits (B, T, ...)."""

    def __init__(self, frames: nn.Module):
        super().__init__()
        self.frames = frames

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.frames(as_frames(x)).unflatten(0, (x.shape[0], -1))


class VideoRecipe(Recipe):
    modality = "video"
    data_config_class = VideoDataConfig
    loss_config_class = VideoLossConfig

    @classmethod
    def validate(cls, data, loss, input_spec):
        typed, terms = super().validate(data, loss, input_spec)
        problem = frame_count_problem(typed.frames, input_spec.temporal_factor)
        if problem:
            raise ConfigError(f"data.frames: {problem}")
        typed.size = typed.size or input_spec.min_side
        if typed.size > input_spec.min_side or typed.size % input_spec.multiple_of:
            raise ConfigError(
                f"data.size: training crops of {typed.size} px must be at most model.image_size "
                f"({input_spec.min_side}) and a multiple of {input_spec.multiple_of}"
            )
        if typed.still_fraction > 0 and not typed.stills:
            raise ConfigError("data.still_fraction: set data.stills to the images to mix in")
        return typed, terms

    def __init__(self, data: dict, loss, model, input_spec):
        super().__init__(data, loss, model, input_spec)
        self._perceptual = None
        if self.terms.perceptual_weight > 0:
            self._perceptual = build_perceptual_loss(self.terms.perceptual_weights)  # None without weights

    def build_dataset(self) -> Dataset:
        options = dict(
            spec=self.input_spec,
            frames=self.data.frames,
            size=self.data.size,
            random_flip=self.data.random_flip,
            hue_rotation=self.data.hue_rotation,
            grayscale=self.data.grayscale,
        )
        clips = VideoDataset(self.data.source, **options)
        if not self.data.stills or self.data.still_fraction == 0:
            return clips
        folder = image_folder(self.data.stills, self.data.held_out, self.data.cache_dir)
        stills = VideoDataset(folder, stills=True, **options)
        return StillsAndClips(clips, stills, self.data.still_fraction)

    def build_discriminator(self):
        # As for images: each layer halves the patch grid, and the closing 4x4 convolutions need 3x3 of it.
        layers = max(1, min(3, int(math.log2(self.data.size / 3))))
        channels = self.terms.discriminator_channels
        if self.terms.discriminator == "3d":
            return PatchGANDiscriminator(self.input_spec.channels, channels, num_layers=layers, dims=3)
        return PerFrameDiscriminator(PatchGANDiscriminator(self.input_spec.channels, channels, num_layers=layers))

    def reconstruction_losses(self, x, recon):
        kind = self.loss.reconstruction
        losses = {kind: (self.loss.reconstruction_weight, reconstruction_loss(recon, x, kind))}
        if self._perceptual is not None:
            self._perceptual.to(x.device)
            losses["perceptual"] = (self.terms.perceptual_weight, self._perceptual(as_frames(recon), as_frames(x)))
        return losses

    def log_media(self, writer, x, recon, step):
        from torchvision.utils import make_grid

        frames = min(8, x.shape[2])
        rows = torch.cat([as_frames(x[:1, :, :frames]), as_frames(recon[:1, :, :frames])])  # input row, then recon
        writer.add_image("reconstructions", make_grid(((rows.float().clamp(-1, 1) + 1) / 2).cpu(), nrow=frames), step)
