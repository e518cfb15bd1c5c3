"""Well-known pretrained tokenizers (transformers' and diffusers' audio codecs and image VQ models)
as frozen mmtok tokenizers: `convert` writes a normal artifact, `load_tokenizer("hf:ID")` converts
on the fly. One Tokenizer family per model; see mmtok.models.registry."""

from mmtok.pretrained.convert import SOURCES, convert, load_hub_model

__all__ = ["SOURCES", "convert", "load_hub_model"]
