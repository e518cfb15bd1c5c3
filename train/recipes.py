"""Which recipe trains which modality: the one place the trainer's side names modalities."""

from __future__ import annotations

from mmtok.config import ConfigError
from mmtok.train.audio_recipe import AudioRecipe
from mmtok.train.image_recipe import ImageRecipe
from mmtok.train.recipe import Recipe

RECIPES: dict[str, type[Recipe]] = {ImageRecipe.modality: ImageRecipe, AudioRecipe.modality: AudioRecipe}


def recipe_for(config) -> Recipe:
    """The recipe for a RunConfig's model family, built from its data, loss and model sections."""
    from mmtok.models import FAMILIES, tokenizer_config

    modality = FAMILIES[config.model["family"]].modality
    if modality not in RECIPES:
        raise ConfigError(f"no training recipe for modality {modality!r} yet")
    return RECIPES[modality](config.data, config.loss, tokenizer_config(config.model))
