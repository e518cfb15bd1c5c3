"""The registry: every tokenizer family, its class and its training recipe, in one table.

The only place that names model families. Classes are imported when first needed, so loading an
audio codec imports no image model, and loading any tokenizer imports no training code (recipes
live in mmtok.train). A new modality adds one line here.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
from typing import Any

from mmtok.config import ConfigError, from_dict


@dataclasses.dataclass(frozen=True)
class Family:
    tokenizer: str  # "module:Class" of the Tokenizer subclass
    recipe: str | None  # "module:Class" of the training Recipe (mmtok.train); None: mmtok does not train it


FAMILIES: dict[str, Family] = {
    "image": Family("mmtok.models.image:ImageTokenizer", "mmtok.train.image_recipe:ImageRecipe"),
    "image1d": Family("mmtok.models.image1d:Image1DTokenizer", "mmtok.train.image_recipe:ImageRecipe"),
    "audio": Family("mmtok.models.audio:AudioTokenizer", "mmtok.train.audio_recipe:AudioRecipe"),
    "video": Family("mmtok.models.video:VideoTokenizer", "mmtok.train.video_recipe:VideoRecipe"),
    "eeg": Family("mmtok.models.eeg:EEGTokenizer", "mmtok.train.eeg_recipe:EEGRecipe"),
    "ecg": Family("mmtok.models.ecg:ECGTokenizer", "mmtok.train.ecg_recipe:ECGRecipe"),
}

# Named model configs of a family (without `family`): "tiny" builds and trains in seconds on a CPU,
# for tests and smoke runs; the real sizes live in configs/*.yaml.
_FSQ_625 = {"kind": "fsq", "options": {"levels": [5, 5, 5, 5]}}
TINY = {
    "image": {
        "image_size": 16, "base_channels": 8, "channel_multipliers": [1, 2], "num_res_blocks": 1,
        "attention": False, "latent_dim": 4, "quantizer": _FSQ_625,
    },
    "image1d": {
        "image_size": 16, "patch_size": 8, "width": 32, "depth": 1, "heads": 2, "num_latent_tokens": 8,
        "latent_dim": 3, "quantizer": {"kind": "fsq", "options": {"levels": [8, 8, 8]}},
    },
    "audio": {
        "sample_rate": 16000, "base_channels": 8, "strides": [2, 4], "latent_dim": 8,
        "quantizer": {"kind": "rvq", "options": {"codebook_size": 64, "num_codebooks": 2}},
    },
    "video": {
        "image_size": 16, "base_channels": 8, "channel_multipliers": [1, 2, 2], "num_res_blocks": 1,
        "attention": False, "latent_dim": 4, "temporal_factor": 4, "quantizer": _FSQ_625,
    },
    "eeg": {
        "patch_size": 50, "width": 16, "depth": 1, "decoder_depth": 1, "heads": 2, "context_patches": 2,
        "conv_channels": 2, "conv_kernels": [9, 5], "latent_dim": 8,
        "quantizer": {"kind": "rvq", "options": {"codebook_size": 16, "num_codebooks": 2, "metric": "cosine"}},
    },
    "ecg": {
        "patch_size": 25, "crossfade": 6, "width": 16, "depth": 1, "decoder_depth": 1, "heads": 2,
        "context_patches": 2, "conv_channels": 2, "conv_kernels": [9, 5], "latent_dim": 8,
        "quantizer": {"kind": "rvq", "options": {"codebook_size": 16, "num_codebooks": 2, "metric": "cosine"}},
    },
}  # fmt: skip
FLAVOURS: dict[str, dict[str, dict]] = {family: {"tiny": config} for family, config in TINY.items()}


# Pretrained models converted by `mmtok convert` (mmtok.pretrained): frozen, never trained here.
FAMILIES.update(
    {
        "hf-encodec": Family("mmtok.pretrained.audio:EncodecTokenizer", None),
        "hf-dac": Family("mmtok.pretrained.audio:DacTokenizer", None),
        "hf-mimi": Family("mmtok.pretrained.audio:MimiTokenizer", None),
        "hf-xcodec": Family("mmtok.pretrained.xcodec:XcodecTokenizer", None),
        "hf-xcodec2": Family("mmtok.pretrained.xcodec:Xcodec2Tokenizer", None),
        "hf-chameleon": Family("mmtok.pretrained.image:ChameleonTokenizer", None),
        "hf-janus": Family("mmtok.pretrained.image:JanusTokenizer", None),
        "hf-emu3": Family("mmtok.pretrained.image:Emu3Tokenizer", None),
        "diffusers-vqmodel": Family("mmtok.pretrained.image:VQModelTokenizer", None),
    }
)


def load_target(target: str) -> Any:
    """The object a "module:name" string names, its module imported now."""
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


def _family(name: Any) -> Family:
    if name not in FAMILIES:
        raise ConfigError(f"model.family: unknown tokenizer family {name!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[name]


def flavour(family: str, name: str = "tiny") -> dict:
    """A family's named model config, with `family`: a fresh copy, free to change."""
    _family(family)
    flavours = FLAVOURS.get(family, {})
    if name not in flavours:
        raise ConfigError(f"model: {family!r} has no flavour {name!r}; known: {sorted(flavours) or 'none'}")
    return {"family": family, **copy.deepcopy(flavours[name])}


def tokenizer_class(family: str):
    return load_target(_family(family).tokenizer)


def recipe_class(family: str):
    """The training recipe of a family (imports mmtok.train)."""
    recipe = _family(family).recipe
    if recipe is None:
        raise ConfigError(
            f"model.family: {family!r} is a pretrained model converted with `mmtok convert`; mmtok does not train it"
        )
    return load_target(recipe)


def tokenizer_config(config: Any):
    """A tokenizer config (a family's dataclass, or a mapping with `family`) validated into its dataclass."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        for name in FAMILIES:
            if isinstance(config, tokenizer_class(name).config_class):
                return config
        raise ConfigError(f"no tokenizer family uses config {type(config).__name__}")
    if not isinstance(config, dict) or "family" not in config:
        raise ConfigError("model.family: a tokenizer config needs one of " + ", ".join(sorted(FAMILIES)))
    fields = dict(config)
    family = fields.pop("family")
    return from_dict(tokenizer_class(family).config_class, fields, "model")


def family_of(config: Any) -> str:
    """The family name of a config (a mapping with `family`, or a family's dataclass)."""
    if isinstance(config, dict):
        _family(config.get("family"))
        return config["family"]
    typed = tokenizer_config(config)
    return next(name for name in FAMILIES if isinstance(typed, tokenizer_class(name).config_class))


def build_tokenizer(config: Any):
    """`config`: a family's config dataclass, or a mapping with `family` and that family's fields."""
    typed = tokenizer_config(config)
    return tokenizer_class(family_of(config))(typed)
