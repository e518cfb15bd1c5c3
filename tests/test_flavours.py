"""The registry's named model flavours: every family mmtok trains has a "tiny" one that builds; a
family's defaults are its shipped recipe's."""

import dataclasses
from pathlib import Path

import pytest

from mmtok.config import ConfigError, load_yaml
from mmtok.models import FAMILIES, build_tokenizer, flavour, recipe_class, tokenizer_class


@pytest.mark.parametrize("family", [name for name, entry in FAMILIES.items() if entry.recipe])
def test_every_trained_family_has_a_tiny_flavour_of_its_own_class(family):
    config = flavour(family)
    tok = build_tokenizer(config)
    assert tok.family == family and config["family"] == family
    assert recipe_class(family).modality == tok.modality
    assert sum(p.numel() for p in tok.parameters()) < 200_000  # tiny: seconds on a CPU


def test_a_flavour_is_a_fresh_copy_and_unknown_names_are_refused():
    first = flavour("image")
    first["quantizer"]["options"]["levels"].append(7)
    assert flavour("image")["quantizer"]["options"]["levels"] == [5, 5, 5, 5]
    with pytest.raises(ConfigError, match="no flavour 'huge'; known: \\['tiny'\\]"):
        flavour("audio", "huge")
    with pytest.raises(ConfigError, match="unknown tokenizer family"):
        flavour("smell")


@pytest.mark.parametrize("family, recipe", [("audio", "audio_rvq.yaml"), ("video", "video.yaml"), ("eeg", "eeg.yaml")])
def test_a_model_built_without_a_quantizer_gets_its_shipped_recipes(family, recipe):
    shipped = load_yaml(Path(__file__).parents[1] / "configs" / recipe)["model"]["quantizer"]
    default = tokenizer_class(family).config_class().quantizer
    assert dataclasses.asdict(default) == {"groups": 1, **shipped}
