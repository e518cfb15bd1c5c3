"""2-D grid image tokenizer: a convolutional encoder/decoder around any mmtok quantizer.

An H x W image becomes an (H/f) x (W/f) grid of tokens, f = 2^(len(channel_multipliers) - 1).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from mmtok.data.image_io import DEFAULT_MAX_PIXELS, ImageInputSpec
from mmtok.models.blocks import Downsample, ResidualBlock, SelfAttention2d, Upsample, group_norm
from mmtok.tokenizer import QuantizerConfig, Tokenizer
from mmtok.vocab import VocabLayout


@dataclasses.dataclass
class ImageTokenizerConfig:
    in_channels: int = 3
    # The training crop size. Images whose shorter side is below it are upscaled to it, in training
    # and when encoding alike; any size that is a multiple of the downsampling factor encodes.
    image_size: int = 256
    base_channels: int = 64
    channel_multipliers: list[int] = dataclasses.field(default_factory=lambda: [1, 2, 2, 4])
    num_res_blocks: int = 2
    attention: bool = True  # self-attention at the lowest resolution
    latent_dim: int = 5
    # A linear f x f patch path beside the deep encoder (a stride-f convolution added to its output)
    # and the deep decoder (a stride-f transposed convolution added to its output): a learned block
    # transform code that the optimiser finds in a few hundred steps, colour included, which the deep
    # layers then refine. Without it a short run keeps luminance only (gray reconstructions).
    patch_skip: bool = False
    # The patch path's kernel: None is the downsampling factor f (disjoint f x f blocks); 2f makes
    # each block's kernel overlap its neighbours by half (a lapped transform), so no block edges.
    patch_kernel: int | None = None
    # The last latent dimension also gates the decoded colour: at the zero level of its FSQ levels
    # (an odd count has one) the token's f x f block comes out exactly gray. Without it a gray photo
    # comes back with chroma noise of a few levels, as quantisation leaves no code that means "no colour".
    chroma_gate: bool = False
    # At decode, pixels whose chroma (distance from their channel mean, on the 0-255 scale; the mean
    # chroma of the window around them) is under this come out gray, over twice this are kept, a
    # ramp between. A gray photo's reconstruction has a few levels of chroma noise that the window's
    # mean mostly cancels; coloured regions keep theirs. 0 turns it off.
    chroma_dead_zone: float = 0.0
    chroma_dead_zone_window: int = 17  # odd, pixels: about two 8x8 blocks
    quantizer: QuantizerConfig = dataclasses.field(
        default_factory=lambda: QuantizerConfig("fsq", options={"levels": [8, 8, 8, 6, 5]})
    )
    max_pixels: int | None = DEFAULT_MAX_PIXELS  # images larger than this after resizing are refused

    def __post_init__(self):
        if not self.channel_multipliers or any(m < 1 for m in self.channel_multipliers):
            raise ValueError("channel_multipliers must be a non-empty list of positive integers")
        if self.num_res_blocks < 1 or self.base_channels < 1 or self.latent_dim < 1:
            raise ValueError("num_res_blocks, base_channels and latent_dim must be positive")
        if not 0 <= self.chroma_dead_zone < 255:
            raise ValueError(f"chroma_dead_zone is on the 0-255 scale, got {self.chroma_dead_zone}")
        if self.chroma_dead_zone_window < 1 or self.chroma_dead_zone_window % 2 == 0:
            raise ValueError(f"chroma_dead_zone_window must be odd and positive, got {self.chroma_dead_zone_window}")
        f = self.downsampling_factor
        if self.patch_kernel is not None and (self.patch_kernel < f or (self.patch_kernel - f) % 2):
            raise ValueError(
                f"patch_kernel must be the downsampling factor {f} plus an even number, got {self.patch_kernel}"
            )

    def patch_path(self) -> dict:
        """Kernel, stride and padding of the patch path: the latent grid is the image's / f either way."""
        f = self.downsampling_factor
        kernel = self.patch_kernel or f
        return {"kernel_size": kernel, "stride": f, "padding": (kernel - f) // 2}

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
        path = config.patch_path()
        self.patch_in = nn.Conv2d(config.in_channels, config.latent_dim, **path) if config.patch_skip else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        latent = self.layers(x)
        return latent if self.patch_in is None else latent + self.patch_in(x)


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
        path = config.patch_path()
        self.patch_out = (
            nn.ConvTranspose2d(config.latent_dim, config.in_channels, **path) if config.patch_skip else None
        )

        self.chroma_gate_scale = None  # set by the tokenizer: (levels - 1) / 2 of the gating dimension
        self.factor = config.downsampling_factor
        self.dead_zone = config.chroma_dead_zone / 127.5  # pixels are on [-1, 1]
        self.dead_zone_window = config.chroma_dead_zone_window

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        pixels = self.to_pixels(self.layers(z))
        pixels = pixels if self.patch_out is None else pixels + self.patch_out(z)
        if self.chroma_gate_scale is not None:
            gate = F.interpolate(chroma_gate(z[:, -1:], self.chroma_gate_scale), scale_factor=self.factor)
            gray, chroma = split_chroma(pixels)
            pixels = gray + gate * chroma
        # At decode only: in training the plain loss on gray crops is what keeps their chroma noise
        # small, and a zone there took that pressure away (gray casts twice as strong, measured).
        if self.dead_zone > 0 and not self.training:
            return chroma_dead_zone(pixels, self.dead_zone, self.dead_zone_window)
        return pixels


def split_chroma(pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(gray, chroma) of (B, C, H, W) pixels: the channels' mean, and each channel's distance from it."""
    gray = pixels.mean(dim=1, keepdim=True)
    return gray, pixels - gray


def chroma_dead_zone(pixels: torch.Tensor, width: float, window: int = 1) -> torch.Tensor:
    """Firm shrinkage of chroma (each pixel's channels minus their mean), judged on the mean chroma
    vector of the window x window pixels around it: shorter than `width` the pixel becomes gray,
    longer than twice that it is kept, between the two a ramp. Hue and brightness are kept; the
    window's mean cancels a gray photo's pixel-to-pixel chroma noise but not a coloured region's
    coherent colour, so pale colour survives a zone that clears the noise."""
    gray, chroma = split_chroma(pixels)
    local = chroma
    if window > 1:
        local = F.avg_pool2d(chroma, window, stride=1, padding=window // 2, count_include_pad=False)
    keep = ((local.norm(dim=1, keepdim=True) - width) / width).clamp(0, 1)
    return gray + chroma * keep


def chroma_gate(level: torch.Tensor, scale: float) -> torch.Tensor:
    """1 for a gating value at any FSQ level but the middle one, 0 there. Straight-through: the
    gradient is that of scale * |level|, with +1 as the sign at 0, so a gray block can learn to
    take colour and a coloured one to drop it (the exact function's gradient is 0 at both)."""
    sign = torch.where(level >= 0, 1.0, -1.0).to(level.dtype)
    soft = scale * level * sign.detach()
    return soft - (soft - soft.clamp(max=1.0)).detach()


def _middle(channels: int, attention: bool) -> list[nn.Module]:
    middle: list[nn.Module] = [ResidualBlock(channels, channels)]
    if attention:
        middle += [SelfAttention2d(channels), ResidualBlock(channels, channels)]
    return middle


class ImageTokenizer(Tokenizer):
    family = "image"
    modality = "image"
    config_class = ImageTokenizerConfig
    token_axes = ("h", "w")

    def __init__(self, config: ImageTokenizerConfig):
        super().__init__(config)
        self.encoder = ImageEncoder(config)
        self.quantizer = config.quantizer.build(config.latent_dim)
        self.decoder = ImageDecoder(config)
        if config.chroma_gate:
            levels = getattr(self.quantizer, "levels", None)
            if config.quantizer.kind != "fsq" or not levels or levels[-1] % 2 == 0 or len(levels) != config.latent_dim:
                raise ValueError(
                    "chroma_gate needs an FSQ quantizer with one level count per latent dimension, the last "
                    f"one odd (it has a zero level), got {config.quantizer.kind} levels {levels}"
                )
            self.decoder.chroma_gate_scale = (levels[-1] - 1) / 2

    def check_input(self, x: torch.Tensor) -> None:
        f = self.config.downsampling_factor
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"expected images (B, {self.config.in_channels}, H, W), got {tuple(x.shape)}")
        if x.shape[2] % f or x.shape[3] % f:
            raise ValueError(f"image height and width must be divisible by {f}, got {x.shape[2]}x{x.shape[3]}")

    def encode_latent(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and not torch.is_grad_enabled():
            # oneDNN's convolutions run channels-last inputs faster: encode 25-32 % quicker on CPU (the quickstart
            # model at 8 x 256^2, the tokenize benchmark's at 16 x 128^2; same ids), decode unchanged. Inference only:
            # training was not measured this way.
            x = x.contiguous(memory_format=torch.channels_last)
        return self.encoder(x).permute(0, 2, 3, 1)  # channel-last for the quantizer

    def decode_latent(self, latent: torch.Tensor) -> torch.Tensor:
        return self.decoder(latent.permute(0, 3, 1, 2))

    def token_shape_for(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        *_, h, w = input_shape
        f = self.config.downsampling_factor
        if h % f or w % f:
            raise ValueError(f"image height and width must be divisible by {f}, got {h}x{w}")
        return (h // f, w // f)

    def last_layer_weight(self) -> torch.Tensor:
        return self.decoder.to_pixels.weight

    @classmethod
    def input_spec_for(cls, config: ImageTokenizerConfig) -> ImageInputSpec:
        return ImageInputSpec(
            config.in_channels,
            min_side=config.image_size,
            multiple_of=config.downsampling_factor,
            max_pixels=config.max_pixels,
        )

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
