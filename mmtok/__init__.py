"""mmtok: media tokenizers whose ids a language model can read."""

__version__ = "0.1.0"

__all__ = ["FrozenTokenizer", "Tokenizer", "load_tokenizer", "__version__"]


def __getattr__(name: str):
    # Lazy, so `mmtok --help` and `import mmtok.config` do not pay for importing torch.
    if name == "Tokenizer":
        from mmtok.tokenizer import Tokenizer

        return Tokenizer
    if name in ("FrozenTokenizer", "load_tokenizer"):
        from mmtok import artifact

        return getattr(artifact, name)
    raise AttributeError(f"module 'mmtok' has no attribute {name!r}")
