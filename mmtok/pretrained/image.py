"""Pretrained image VQ models as mmtok tokenizers: the image tokenizers of Chameleon, Janus and
Emu3 (transformers) and diffusers' VQModel (latent-diffusion VQ-GANs, MoVQ).

mmtok's image input path gives 8-bit RGB mapped to [-1, 1]; each model gets its pixels as its own
image processor would make them, `(uint8 * rescale_factor - image_mean) / image_std` (the
processor's numbers, read at conversion), and decoded pixels are mapped back. Sizes follow the
model: a model trained at one resolution gets its shorter side resized to `resize_to` and a
centred `crop_to` square (Chameleon 512 px; Janus needs its fixed grid to decode); the others take
any size whose sides are multiples of the downsampling factor. The encoders attend over the whole
image, so images of one size share a batch.
"""

from __future__ import annotations

import dataclasses

import torch

from mmtok.data.image_io import ImageInputSpec
from mmtok.pretrained.base import PretrainedConfig, PretrainedTokenizer, checked
from mmtok.vocab import VocabLayout


@dataclasses.dataclass
class ImageVQConfig(PretrainedConfig):
    resize_to: int | None = None  # shorter side resized to this before the crop; None: kept
    crop_to: int | None = None  # centred crop of at most this per side; None: the whole image
    # The model's image processor: model pixels = (uint8 * rescale_factor - image_mean) / image_std.
    rescale_factor: float = 1 / 255
    image_mean: list[float] = dataclasses.field(default_factory=lambda: [0.5, 0.5, 0.5])
    image_std: list[float] = dataclasses.field(default_factory=lambda: [0.5, 0.5, 0.5])

    def __post_init__(self):
        super().__post_init__()
        if len(self.image_mean) != 3 or len(self.image_std) != 3 or min(self.image_std) <= 0:
            raise ValueError("image_mean and image_std need 3 values each, std positive")


class ImageVQTokenizer(PretrainedTokenizer):
    modality = "image"
    token_axes = ("h", "w")

    # -- what a model supplies --------------------------------------------------------------------------------
    @classmethod
    def downsampling_for(cls, model_config: dict) -> int:
        return 2 ** (len(model_config["channel_multiplier"]) - 1)

    def model_indices(self, pixels: torch.Tensor) -> torch.Tensor:
        """Model-normalised pixels (B, 3, H, W) -> code indices (B, H/f, W/f). Chameleon's and
        Janus's `encode` return them flat, in raster order."""
        b, _, h, w = pixels.shape
        return self.model.encode(pixels, return_dict=True).image_tokens.view(b, h // self.factor, w // self.factor)

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices (B, h, w) -> model-normalised pixels (B, 3, H, W), through the model's decode."""
        raise NotImplementedError

    def codebook(self) -> torch.nn.Embedding:
        return self.model.quantize.embedding

    # -- the shared hooks ----------------------------------------------------------------------------------------
    @property
    def factor(self) -> int:
        return self.downsampling_for(self.config.model_config)

    @classmethod
    def input_spec_for(cls, config: ImageVQConfig) -> ImageInputSpec:
        factor = cls.downsampling_for(config.model_config)
        return ImageInputSpec(3, crop_size=config.crop_to, multiple_of=factor, resize_to=config.resize_to)

    def _affine(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(a, b) with model pixels = a * x + b for x in [-1, 1] (uint8 = 127.5 * (x + 1)); exactly
        (1, 0) for a processor that maps to [-1, 1], so then the model sees mmtok's very pixels."""
        config = self.config
        mean, std = (
            torch.tensor(v, dtype=torch.float64).view(1, 3, 1, 1) for v in (config.image_mean, config.image_std)
        )
        a = 127.5 * config.rescale_factor / std
        b = (127.5 * config.rescale_factor - mean) / std
        return a.to(x), b.to(x)

    def check_input(self, x: torch.Tensor) -> None:
        f = self.factor
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images (B, 3, H, W), got {tuple(x.shape)}")
        if x.shape[2] % f or x.shape[3] % f:
            raise ValueError(f"image height and width must be divisible by {f}, got {x.shape[2]}x{x.shape[3]}")

    def model_ids(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self._affine(x)
        return self.model_indices(x * a + b)[..., None]

    def model_decode(self, ids: torch.Tensor) -> torch.Tensor:
        pixels = self.decode_indices(ids[..., 0])
        a, b = self._affine(pixels)
        return (pixels - b) / a

    def code_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        return self.codebook()(ids[:, 0])

    def codebook_sizes_for(self, config) -> list[int]:
        return [self.codebook().num_embeddings]

    def token_shape_for(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        *_, h, w = input_shape
        f = self.factor
        if h % f or w % f:
            raise ValueError(f"image height and width must be divisible by {f}, got {h}x{w}")
        return (h // f, w // f)

    def probe_input(self, generator: torch.Generator) -> torch.Tensor:
        side = self.fixed_size or 4 * self.factor  # the smallest image the model takes, in [-1, 1]
        return torch.rand(1, 3, side, side, generator=generator) * 2 - 1

    @property
    def fixed_size(self) -> int | None:
        """The one image size this tokenizer gives (a resized and cropped square), or None."""
        size, crop = self.config.resize_to, self.config.crop_to
        return crop // self.factor * self.factor if size and crop and crop <= size else None

    def vocab_layout(self, **options) -> VocabLayout:
        size = self.fixed_size
        if size is not None:  # one grid: a flat raster, as the model's own LLM reads it
            return VocabLayout("image", list(self.token_shape_for((size, size))), self.codebook_sizes, **options)
        # Any size: a marker after each row keeps the grid's shape in the flat sequence.
        nominal = self.config.crop_to or 256
        shape = list(self.token_shape_for((nominal, nominal)))
        return VocabLayout("image", shape, self.codebook_sizes, **{"row_markers": True, **options})

    def rate_examples(self):
        sizes = [self.fixed_size] if self.fixed_size else [256, 512]
        return [(f"{s}x{s}", (3, s, s), float(s * s), "pixel") for s in sizes if s % self.factor == 0]


# -- Chameleon ------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class ChameleonTokenizerConfig(ImageVQConfig):
    pass


class ChameleonTokenizer(ImageVQTokenizer):
    family = "hf-chameleon"
    config_class = ChameleonTokenizerConfig
    model_class_name = "ChameleonVQVAE"

    @classmethod
    def default_options(cls, model_config: dict) -> dict:
        size = model_config.get("resolution", 512)
        return {"resize_to": size, "crop_to": size}

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(
            "transformers' ChameleonVQVAE is an encoder only (Meta released no image decoder weights): "
            "Chameleon ids cannot be decoded"
        )


# -- Janus --------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class JanusTokenizerConfig(ImageVQConfig):
    pass


class JanusTokenizer(ImageVQTokenizer):
    family = "hf-janus"
    config_class = JanusTokenizerConfig
    model_class_name = "JanusVQVAE"

    @classmethod
    def default_options(cls, model_config: dict) -> dict:
        size = model_config["num_patches"] * cls.downsampling_for(model_config)
        return {"resize_to": size, "crop_to": size}

    @classmethod
    def check_supported(cls, config: JanusTokenizerConfig) -> None:
        size = cls.default_options(config.model_config)["resize_to"]
        checked(
            config.resize_to == size and config.crop_to == size,
            f"model.resize_to and model.crop_to: Janus decodes only its fixed {size}x{size} grid; set both to {size}",
        )

    def check_input(self, x: torch.Tensor) -> None:
        super().check_input(x)
        size = self.config.crop_to
        if tuple(x.shape[-2:]) != (size, size):
            raise ValueError(f"Janus takes {size}x{size} images only, got {x.shape[-2]}x{x.shape[-1]}")

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        return self.model.decode(indices.flatten(1))

    def code_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        # Its decoder reads l2-normalised code vectors (JanusVQVAEVectorQuantizer.get_codebook_entry).
        return torch.nn.functional.normalize(super().code_vectors(ids), dim=-1)


# -- Emu3 ---------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Emu3TokenizerConfig(ImageVQConfig):
    pass


class Emu3Tokenizer(ImageVQTokenizer):
    family = "hf-emu3"
    config_class = Emu3TokenizerConfig
    model_class_name = "Emu3VQVAE"

    @classmethod
    def default_options(cls, model_config: dict) -> dict:
        # Emu3 reads images at their own aspect ratio, from 512 x 512 to about 1024 x 1024 pixels.
        return {"resize_to": 512, "crop_to": 1024}

    def model_indices(self, pixels: torch.Tensor) -> torch.Tensor:
        sizes = torch.tensor([list(pixels.shape[-2:])] * pixels.shape[0], device=pixels.device)
        return torch.stack(self.model.encode(pixels, image_sizes=sizes, return_dict=True).image_tokens)

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        return self.model.decode(indices)


# -- diffusers' VQModel -------------------------------------------------------------------------------------
@dataclasses.dataclass
class VQModelTokenizerConfig(ImageVQConfig):
    pass


class VQModelTokenizer(ImageVQTokenizer):
    family = "diffusers-vqmodel"
    config_class = VQModelTokenizerConfig
    library = "diffusers"
    model_class_name = "VQModel"

    @classmethod
    def downsampling_for(cls, model_config: dict) -> int:
        return 2 ** (len(model_config["block_out_channels"]) - 1)

    @classmethod
    def default_options(cls, model_config: dict) -> dict:
        size = model_config.get("sample_size") or 0
        return {"resize_to": size, "crop_to": size} if size >= 64 else {}

    def model_indices(self, pixels: torch.Tensor) -> torch.Tensor:
        latents = self.model.encode(pixels).latents
        _, _, (_, _, indices) = self.model.quantize(latents)
        b, _, h, w = latents.shape
        return indices.view(b, h, w)

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        b, h, w = indices.shape
        shape = (b, h, w, self.codebook().embedding_dim)
        if self.model.config.lookup_from_codebook:
            return self.model.decode(indices.flatten(), force_not_quantize=True, shape=shape).sample
        latents = self.model.quantize.get_codebook_entry(indices.flatten(), shape)
        return self.model.decode(latents, force_not_quantize=True).sample
