"""Tokenizer families (one module each) and the registry that rebuilds one from its config."""

from mmtok.models.registry import FAMILIES, build_tokenizer, flavour, recipe_class, tokenizer_class, tokenizer_config

__all__ = ["FAMILIES", "build_tokenizer", "flavour", "recipe_class", "tokenizer_class", "tokenizer_config"]
