"""1-D flexible-length image tokenizer: K latent tokens per image, of which any first k are decodable.

A ViT encoder reads the image patches together with K learned latent tokens and keeps only the
latent tokens (TiTok). The decoder, another ViT, sees the first k quantized tokens, a learned mask
token in positions k..K-1, and one query per patch, from which it predicts the pixels. Training
draws k per example (nested dropout, as in One-D-Piece and FlexTok), so the first tokens carry the
coarse content and each further token adds detail: `encode(x, num_tokens=k)` picks the length.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from mmtok.data.image_io import DEFAULT_MAX_PIXELS, ImageInputSpec
from mmtok.tokenizer import QuantizerConfig, Tokenizer
from mmtok.vocab import VocabLayout

TOKEN_DROPOUTS = ("uniform", "pow2", "none")


@dataclasses.dataclass
class Image1DTokenizerConfig:
    image_size: int = 256  # square inputs only: positions are learned per patch
    in_channels: int = 3
    patch_size: int = 16
    width: int = 512
    depth: int = 8  # transformer layers in the encoder, and again in the decoder
    heads: int = 8
    mlp_ratio: float = 4.0
    num_latent_tokens: int = 32  # K, the longest sequence
    latent_dim: int = 5
    quantizer: QuantizerConfig = dataclasses.field(
        default_factory=lambda: QuantizerConfig("fsq", options={"levels": [8, 8, 8, 6, 5]})
    )
    # How training draws k per example: any of 1..K ("uniform"), a power of two up to K (plus K)
    # ("pow2"), or always K ("none": a fixed-length tokenizer whose prefixes are not trained).
    token_dropout: str = "uniform"
    # A linear map from all pixels to all K latent vectors beside the encoder, and back beside the
    # decoder (the tokens left out contribute nothing). Trained with nested dropout it orders like
    # PCA (Rippel et al. 2014): the first tokens take the coarse content and each further token
    # adds detail, within a few hundred steps, which the transformers then refine. Without it a
    # short CPU run spreads nothing over the tokens and PSNR does not rise with k.
    linear_path: bool = False
    max_pixels: int | None = DEFAULT_MAX_PIXELS  # images larger than this after resizing are refused

    def __post_init__(self):
        for name in (
            "image_size",
            "in_channels",
            "patch_size",
            "width",
            "depth",
            "heads",
            "num_latent_tokens",
            "latent_dim",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} must be divisible by patch_size {self.patch_size}")
        if self.width % self.heads:
            raise ValueError(f"width {self.width} must be divisible by heads {self.heads}")
        if self.mlp_ratio <= 0:
            raise ValueError(f"mlp_ratio must be positive, got {self.mlp_ratio}")
        if self.token_dropout not in TOKEN_DROPOUTS:
            raise ValueError(f"token_dropout must be one of {TOKEN_DROPOUTS}, got {self.token_dropout!r}")

    @property
    def grid_size(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid_size**2


def powers_of_two_up_to(limit: int) -> list[int]:
    """1, 2, 4, ... up to `limit`, with `limit` itself last when it is not a power of two."""
    ks = [2**i for i in range(limit.bit_length()) if 2**i <= limit]
    return ks if ks[-1] == limit else ks + [limit]


def transformer(config: Image1DTokenizerConfig) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(
        config.width,
        config.heads,
        dim_feedforward=int(config.mlp_ratio * config.width),
        dropout=0.0,
        activation="gelu",
        batch_first=True,
        norm_first=True,
    )
    # Pre-norm layers leave the residual stream unnormalised, hence the final norm.
    return nn.TransformerEncoder(layer, config.depth, norm=nn.LayerNorm(config.width), enable_nested_tensor=False)


def learned_tokens(count: int, width: int) -> nn.Parameter:
    # width^-0.5 (as CLIP and TiTok): large enough next to the patch embeddings that positions and
    # latent slots are told apart from the first step, which narrow models otherwise learn slowly.
    return nn.Parameter(torch.randn(1, count, width) * width**-0.5)


class Image1DEncoder(nn.Module):
    """Image (B, C, S, S) -> K latent vectors (B, K, latent_dim)."""

    def __init__(self, config: Image1DTokenizerConfig):
        super().__init__()
        self.patchify = nn.Conv2d(config.in_channels, config.width, config.patch_size, stride=config.patch_size)
        self.patch_positions = learned_tokens(config.num_patches, config.width)
        self.latent_tokens = learned_tokens(config.num_latent_tokens, config.width)  # also their positions
        self.transformer = transformer(config)
        self.to_latent = nn.Linear(config.width, config.latent_dim)
        pixels, latents = config.in_channels * config.image_size**2, config.num_latent_tokens * config.latent_dim
        self.linear = nn.Linear(pixels, latents) if config.linear_path else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = self.patchify(x).flatten(2).transpose(1, 2) + self.patch_positions  # (B, P, width)
        latents = self.latent_tokens.expand(x.shape[0], -1, -1)
        hidden = self.transformer(torch.cat([patches, latents], dim=1))
        latent = self.to_latent(hidden[:, patches.shape[1] :])
        return latent if self.linear is None else latent + self.linear(x.flatten(1)).view_as(latent)


class Image1DDecoder(nn.Module):
    """K latent vectors, of which only the first `num_tokens[b]` are kept per example -> image."""

    def __init__(self, config: Image1DTokenizerConfig):
        super().__init__()
        self.patch_size = config.patch_size
        self.grid_size = config.grid_size
        self.from_latent = nn.Linear(config.latent_dim, config.width)
        self.mask_token = learned_tokens(1, config.width)  # stands for every token left out
        self.latent_positions = learned_tokens(config.num_latent_tokens, config.width)
        self.patch_queries = learned_tokens(config.num_patches, config.width)  # one per output patch
        self.transformer = transformer(config)
        self.to_pixels = nn.Linear(config.width, config.in_channels * config.patch_size**2)
        pixels, latents = config.in_channels * config.image_size**2, config.num_latent_tokens * config.latent_dim
        self.linear = nn.Linear(latents, pixels) if config.linear_path else None
        if self.linear is not None:  # starts silent: a random 320 -> 12,288 map would add loud noise
            nn.init.zeros_(self.linear.weight)
            nn.init.zeros_(self.linear.bias)

    def forward(self, latents: torch.Tensor, num_tokens: torch.Tensor) -> torch.Tensor:
        """latents: (B, K, latent_dim); num_tokens: (B,) how many leading tokens each example keeps."""
        batch, positions = latents.shape[:2]
        kept = torch.arange(positions, device=latents.device) < num_tokens[:, None]  # (B, K)
        tokens = torch.where(kept[..., None], self.from_latent(latents), self.mask_token)
        tokens = tokens + self.latent_positions
        queries = self.patch_queries.expand(batch, -1, -1)
        hidden = self.transformer(torch.cat([tokens, queries], dim=1))[:, positions:]
        pixels = self.to_pixels(hidden)  # (B, P, C * patch^2), patches in raster order
        grid = pixels.transpose(1, 2).unflatten(2, (self.grid_size, self.grid_size))
        image = F.pixel_shuffle(grid, self.patch_size)
        if self.linear is None:
            return image
        kept_latents = torch.where(kept[..., None], latents, 0.0)
        return image + self.linear(kept_latents.flatten(1)).view_as(image)


class Image1DTokenizer(Tokenizer):
    family = "image1d"
    modality = "image"
    config_class = Image1DTokenizerConfig
    token_axes = ("k",)

    def __init__(self, config: Image1DTokenizerConfig):
        super().__init__(config)
        self.encoder = Image1DEncoder(config)
        self.quantizer = config.quantizer.build(config.latent_dim)
        self.decoder = Image1DDecoder(config)

    @property
    def num_latent_tokens(self) -> int:
        return self.config.num_latent_tokens

    @property
    def max_num_tokens(self) -> int:
        return self.config.num_latent_tokens

    def check_input(self, x: torch.Tensor) -> None:
        c, s = self.config.in_channels, self.config.image_size
        if x.ndim != 4 or tuple(x.shape[1:]) != (c, s, s):
            raise ValueError(f"expected images (B, {c}, {s}, {s}), got {tuple(x.shape)}")

    def sample_num_tokens(self, batch: int, device: torch.device) -> torch.Tensor:
        """Nested dropout: how many leading tokens each training example keeps."""
        K, mode = self.num_latent_tokens, self.config.token_dropout
        if mode == "uniform":
            return torch.randint(1, K + 1, (batch,), device=device)
        choices = torch.tensor(powers_of_two_up_to(K) if mode == "pow2" else [K], device=device)
        return choices[torch.randint(len(choices), (batch,), device=device)]

    def encode_latent(self, x: torch.Tensor) -> torch.Tensor:
        # Every position is quantized in training, so every position's codes train.
        return self.encoder(x)

    def decode_latent(self, latent: torch.Tensor) -> torch.Tensor:
        """latent (B, k, latent_dim) for any 1 <= k <= K. Training (k = K) draws how many leading
        tokens each example keeps; otherwise the decoder sees the k given and masks the rest."""
        batch, k = latent.shape[:2]
        if self.training and k == self.num_latent_tokens:
            num_tokens = self.sample_num_tokens(batch, latent.device)
        else:
            num_tokens = torch.full((batch,), k, device=latent.device)
        padded = F.pad(latent, (0, 0, 0, self.num_latent_tokens - k))  # the decoder always sees K slots
        return self.decoder(padded, num_tokens)

    @torch.no_grad()
    def ids_by_position(self, x: torch.Tensor) -> torch.Tensor:
        """All K tokens' ids, position-major: (K, B, num_codebooks), so each latent position's
        codebook usage can be counted on its own (e.g. with one CodebookMonitor per position)."""
        return self.encode(x).transpose(0, 1)

    def token_shape_for(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        *_, h, w = input_shape
        s = self.config.image_size
        if (h, w) != (s, s):
            raise ValueError(f"this tokenizer reads {s}x{s} images, got {h}x{w}")
        return (self.num_latent_tokens,)

    def last_layer_weight(self) -> torch.Tensor:
        return self.decoder.to_pixels.weight

    @classmethod
    def input_spec_for(cls, config: Image1DTokenizerConfig) -> ImageInputSpec:
        s = config.image_size  # centre crops of exactly s x s, smaller images upscaled first
        return ImageInputSpec(config.in_channels, min_side=s, crop_size=s, multiple_of=s, max_pixels=config.max_pixels)

    def vocab_layout(self, **options) -> VocabLayout:
        # None: a segment holds any k <= K tokens, and its length says which k.
        return VocabLayout("image", [None], self.codebook_sizes, **options)

    def rate_examples(self):
        s = self.config.image_size
        return [(f"{s}x{s}", (self.config.in_channels, s, s), float(s * s), "pixel")]
