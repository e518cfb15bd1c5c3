"""2-D grid image tokenizer: a convolutional encoder/decoder around any mmtok quantizer.

An H x W image becomes an (H/f) x (W/f) grid of tokens, f = 2^(len(channel_multipliers) - 1).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from mmtok.data.image_io import images_to_tensor, tensor_to_images
from mmtok.models.blocks import Downsample, ResidualBlock, SelfAttention2d, Upsample, group_norm
from mmtok.quantize import QuantizerOutput
from mmtok.tokenizer import QuantizerConfig, Tokenizer
from mmtok.vocab import VocabLayout


@dataclasses.dataclass
class ImageTokenizerConfig:
    in_channels: int = 3
    image_size: int = 256  # the nominal input size (vocab token shape, model card); any multiple of f encodes
    base_channels: int = 64
    channel_multipliers: list[int] = dataclasses.field(default_factory=lambda: [1, 2, 2, 4])
    num_res_blocks: int = 2
    attention: bool = True  # self-attention at the lowest resolution
    latent_dim: int = 5
    quantizer: QuantizerConfig = dataclasses.field(
        default_factory=lambda: QuantizerConfig("fsq", options={"levels": [8, 8, 8, 6, 5]})
    )

    def __post_init__(self):
        if not self.channel_multipliers or any(m < 1 for m in self.channel_multipliers):
            raise ValueError("channel_multipliers must be a non-empty list of positive integers")
        if self.num_res_blocks < 1 or self.base_channels < 1 or self.latent_dim < 1:
            raise ValueError("num_res_blocks, base_channels and latent_dim must be positive")

    @property
    def downsampling_factor(self) -> int:
        return 2 ** (len(self.channel_multipliers) - 1)


class ImageEncoder(nn.Module):
    def __init__(self, config: ImageTokenizerConfig):
        super().__init__()
        widths = [config.base_channels * m for m in config.channel_multipliers]
        layers: list[nn.Module] = [nn.Conv2d(config.in_channels, widths[0], 3, padding=1)]
        channels = widths[0]
        for level, width in enumerate(widths):
            for _ in range(config.num_res_blocks):
                layers.append(ResidualBlock(channels, width))
                channels = width
            if level < len(widths) - 1:
                layers.append(Downsample(channels))
        layers += _middle(channels, config.attention)
        layers += [group_norm(channels), nn.SiLU(), nn.Conv2d(channels, config.latent_dim, 1)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class ImageDecoder(nn.Module):
    def __init__(self, config: ImageTokenizerConfig):
        super().__init__()
        widths = [config.base_channels * m for m in config.channel_multipliers]
        channels = widths[-1]
        layers: list[nn.Module] = [nn.Conv2d(config.latent_dim, channels, 3, padding=1)]
        layers += _middle(channels, config.attention)
        for level in reversed(range(len(widths))):
            for _ in range(config.num_res_blocks):
                layers.append(ResidualBlock(channels, widths[level]))
                channels = widths[level]
            if level > 0:
                layers.append(Upsample(channels))
        layers += [group_norm(channels), nn.SiLU()]
        self.layers = nn.Sequential(*layers)
        self.to_pixels = nn.Conv2d(channels, config.in_channels, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.to_pixels(self.layers(z))


def _middle(channels: int, attention: bool) -> list[nn.Module]:
    middle: list[nn.Module] = [ResidualBlock(channels, channels)]
    if attention:
        middle += [SelfAttention2d(channels), ResidualBlock(channels, channels)]
    return middle


class ImageTokenizer(Tokenizer):
    family = "image"
    modality = "image"
    config_class = ImageTokenizerConfig

    def __init__(self, config: ImageTokenizerConfig):
        super().__init__(config)
        self.encoder = ImageEncoder(config)
        self.quantizer = config.quantizer.build(config.latent_dim)
        self.decoder = ImageDecoder(config)

    def _check_images(self, x: torch.Tensor) -> None:
        f = self.config.downsampling_factor
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"expected images (B, {self.config.in_channels}, H, W), got {tuple(x.shape)}")
        if x.shape[2] % f or x.shape[3] % f:
            raise ValueError(f"image height and width must be divisible by {f}, got {x.shape[2]}x{x.shape[3]}")

    def _quantize(self, x: torch.Tensor, **kwargs) -> QuantizerOutput:
        self._check_images(x)
        latent = self.encoder(x).permute(0, 2, 3, 1)  # channel-last for the quantizer
        return self.quantizer(latent, **kwargs)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, QuantizerOutput]:
        out = self._quantize(x)
        return self.decoder(out.quantized.permute(0, 3, 1, 2)), out

    @torch.no_grad()
    def encode(self, x: torch.Tensor, num_codebooks: int | None = None) -> torch.Tensor:
        kwargs = {} if num_codebooks is None else {"num_codebooks": num_codebooks}
        return self._quantize(x, **kwargs).ids

    @torch.no_grad()
    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.ndim != 4:
            raise ValueError(f"expected ids (B, h, w, num_codebooks), got {tuple(ids.shape)}")
        return self.decoder(self.quantizer.decode_ids(ids).permute(0, 3, 1, 2))

    def token_shape_for(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        *_, h, w = input_shape
        f = self.config.downsampling_factor
        if h % f or w % f:
            raise ValueError(f"image height and width must be divisible by {f}, got {h}x{w}")
        return (h // f, w // f)

    def last_layer_weight(self) -> torch.Tensor:
        return self.decoder.to_pixels.weight

    def media_to_tensor(self, media) -> torch.Tensor:
        return images_to_tensor(media, multiple=self.config.downsampling_factor)

    def tensor_to_media(self, x: torch.Tensor):
        return tensor_to_images(x)

    def vocab_layout(self, **options) -> VocabLayout:
        # Row markers keep the grid's shape in the flat sequence, so any image size round-trips.
        size = self.config.image_size
        options = {"row_markers": True, **options}
        return VocabLayout("image", list(self.token_shape_for((size, size))), self.codebook_sizes, **options)

    def rate_examples(self):
        sizes = sorted({self.config.image_size, 256, 512})
        return [
            (f"{s}x{s}", (self.config.in_channels, s, s), float(s * s), "pixel")
            for s in sizes
            if s % self.config.downsampling_factor == 0
        ]

    def input_spec(self) -> dict:
        return {
            "image_size": self.config.image_size,
            "channels": self.config.in_channels,
            "range": [-1.0, 1.0],
            "multiple_of": self.config.downsampling_factor,
        }
