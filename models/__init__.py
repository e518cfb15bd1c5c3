"""Tokenizer families and the registry that rebuilds one from its config."""

from __future__ import annotations

import dataclasses
from typing import Any

from mmtok.config import ConfigError, from_dict
from mmtok.models.audio import AudioTokenizer, AudioTokenizerConfig
from mmtok.models.image import ImageTokenizer, ImageTokenizerConfig
from mmtok.models.image1d import Image1DTokenizer, Image1DTokenizerConfig
from mmtok.tokenizer import Tokenizer

FAMILIES: dict[str, type[Tokenizer]] = {
    ImageTokenizer.family: ImageTokenizer,
    AudioTokenizer.family: AudioTokenizer,
    Image1DTokenizer.family: Image1DTokenizer,
}


def tokenizer_config(config: Any):
    """Validates a tokenizer config (a family's dataclass, or a mapping with `family`) into its dataclass."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        if not any(isinstance(config, cls.config_class) for cls in FAMILIES.values()):
            raise ConfigError(f"no tokenizer family uses config {type(config).__name__}")
        return config
    if not isinstance(config, dict) or "family" not in config:
        raise ConfigError("model.family: a tokenizer config needs one of " + ", ".join(sorted(FAMILIES)))
    fields = dict(config)
    family = fields.pop("family")
    if family not in FAMILIES:
        raise ConfigError(f"model.family: unknown tokenizer family {family!r}; known: {sorted(FAMILIES)}")
    return from_dict(FAMILIES[family].config_class, fields, "model")


def build_tokenizer(config: Any) -> Tokenizer:
    """`config`: a family's config dataclass, or a mapping with `family` and that family's fields."""
    typed = tokenizer_config(config)
    cls = next(cls for cls in FAMILIES.values() if isinstance(typed, cls.config_class))
    return cls(typed)


__all__ = [
    "AudioTokenizer",
    "AudioTokenizerConfig",
    "FAMILIES",
    "Image1DTokenizer",
    "Image1DTokenizerConfig",
    "ImageTokenizer",
    "ImageTokenizerConfig",
    "build_tokenizer",
    "tokenizer_config",
]
