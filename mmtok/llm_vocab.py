"""Plugging media ids into a Hugging Face text tokenizer and a causal LM's embedding table
(the layouts themselves are mmtok.vocab's)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch

from mmtok.vocab import VocabLayout, stack_layouts


def extend_tokenizer(text_tokenizer: Any, *frozen_tokenizers: Any, **layout_options) -> list[VocabLayout]:
    """Adds each frozen tokenizer's special and media tokens to `text_tokenizer` (a transformers
    tokenizer), right after its current vocabulary, and returns the layouts with those offsets.
    A VocabLayout may stand for a tokenizer (as `mmtok pack` does, from shards' manifests).
    `layout_options` (codebook_offsets, flatten, row_markers) override each tokenizer's defaults."""
    from tokenizers import AddedToken

    layouts = [t if isinstance(t, VocabLayout) else t.vocab_layout(**layout_options) for t in frozen_tokenizers]
    if len({layout.modality for layout in layouts}) != len(layouts):
        raise ValueError("two tokenizers of the same modality would share special token names")
    placed = stack_layouts(layouts, start=len(text_tokenizer))
    for layout in placed:
        names = layout.token_strings()
        specials = set(layout.special_tokens)
        tokens = [AddedToken(name, special=name in specials, normalized=False) for name in names]
        text_tokenizer.add_tokens(tokens)
        got = text_tokenizer.convert_tokens_to_ids([names[0], names[-1]])
        if got != [layout.base_offset, layout.end_offset - 1]:
            raise RuntimeError(
                f"text tokenizer placed {layout.modality} tokens at {got}, "
                f"expected {[layout.base_offset, layout.end_offset - 1]} (are some names taken?)"
            )
    return placed


END_OF_DOCUMENT = "<|endoftext|>"


def bare_text_tokenizer():
    """A transformers tokenizer whose only token is the end-of-document marker (id 0): the text
    side of a joint vocabulary for media-only training, so trainers still load one tokenizer folder."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel({END_OF_DOCUMENT: 0}, unk_token=END_OF_DOCUMENT))
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token=END_OF_DOCUMENT, pad_token=END_OF_DOCUMENT)


@dataclasses.dataclass
class JointVocabulary:
    """A text vocabulary followed by media layouts, as one LLM's ids: what `mmtok pack` writes
    (pack.json) and what reads its sequences back into text and media."""

    text_size: int
    eod_id: int  # ends every document; also the padding id (masked out by attention_mask)
    layouts: list[VocabLayout]

    @property
    def size(self) -> int:
        return max([self.text_size, *(layout.end_offset for layout in self.layouts)])

    def split(self, llm_ids: Sequence[int] | torch.Tensor) -> list:
        """A sequence -> text runs (lists of ids) and media segments, as (modality, ids shaped
        (*token_shape, num_codebooks)) pairs, in order."""
        parts: list = [llm_ids.tolist() if torch.is_tensor(llm_ids) else [int(v) for v in llm_ids]]
        for layout in self.layouts:  # each layout splits the text runs the layouts before it left
            split_parts: list = []
            for part in parts:
                if not isinstance(part, list):
                    split_parts.append(part)
                    continue
                pieces = layout.from_llm_ids(part)
                split_parts += [(layout.modality, p) if torch.is_tensor(p) else p for p in pieces]
            parts = split_parts
        return parts

    def to_json(self) -> dict:
        return {
            "text_size": self.text_size,
            "eod_id": self.eod_id,
            "size": self.size,
            "layouts": [layout.to_json() for layout in self.layouts],
        }

    @classmethod
    def from_json(cls, data: dict) -> JointVocabulary:
        layouts = [VocabLayout.from_json(layout) for layout in data["layouts"]]
        return cls(text_size=data["text_size"], eod_id=data["eod_id"], layouts=layouts)


def interleave(parts: Sequence[Any], text_tokenizer: Any = None) -> list[int]:
    """input_ids for a mixed sequence: strings are encoded by `text_tokenizer` (no special tokens
    added); tensors and lists of ints (e.g. `FrozenTokenizer.to_llm_ids` output) are taken as ids."""
    ids: list[int] = []
    for part in parts:
        if isinstance(part, str):
            if text_tokenizer is None:
                raise ValueError("a text part needs text_tokenizer")
            ids.extend(text_tokenizer.encode(part, add_special_tokens=False))
        elif torch.is_tensor(part):
            ids.extend(int(v) for v in part.reshape(-1).tolist())
        else:
            ids.extend(int(v) for v in part)
    return ids


@torch.no_grad()
def init_media_embeddings(
    embeddings: torch.Tensor,
    layouts: Sequence[VocabLayout],
    *,
    method: str = "mean",
    frozen_tokenizers: Sequence[Any] = (),
    seed: int = 0,
) -> None:
    """Initialises the rows of `embeddings` (an LLM's input embedding weight, already resized)
    that the layouts occupy.

    "mean": every new row is the mean text embedding plus small noise (rows must differ).
    "codebook": each code's vector in the tokenizer's latent space is mapped into the embedding
    space by a linear map fitted so that the mapped codes have the text embeddings' mean and
    their principal spread; related codes start with related embeddings. Special tokens use "mean".
    """
    if method not in ("mean", "codebook"):
        raise ValueError(f"method must be 'mean' or 'codebook', got {method!r}")
    if method == "codebook" and len(frozen_tokenizers) != len(layouts):
        raise ValueError("method='codebook' needs the frozen tokenizer of every layout")
    text_rows = min(layout.base_offset for layout in layouts)
    text = embeddings[:text_rows].float()
    mean, std = text.mean(dim=0), text.std(dim=0).mean()
    generator = torch.Generator(device="cpu").manual_seed(seed)
    for index, layout in enumerate(layouts):
        if layout.end_offset > embeddings.shape[0]:
            raise ValueError(f"embeddings have {embeddings.shape[0]} rows; resize them to at least {layout.end_offset}")
        noise = torch.randn(layout.size, embeddings.shape[1], generator=generator) * 0.02 * std
        rows = mean + noise
        if method == "codebook":
            codes = code_vectors(frozen_tokenizers[index].quantizer, layout)
            rows[len(layout.special_tokens) :] = fit_to_embedding_space(codes, text)
        embeddings[layout.base_offset : layout.end_offset] = rows.to(embeddings.dtype)


def code_vectors(quantizer, layout: VocabLayout) -> torch.Tensor:
    """One latent vector per code of the layout, in the layout's id order: a code's contribution
    is decode(that code) - decode(code 0 everywhere), which also works for residual and grouped kinds."""
    c = layout.num_codebooks
    base = quantizer.decode_ids(torch.zeros(1, c, dtype=torch.long))
    vectors = []
    for codebook, size in enumerate(layout.codebook_sizes):
        ids = torch.zeros(size, c, dtype=torch.long)
        ids[:, codebook] = torch.arange(size)
        vectors.append(quantizer.decode_ids(ids) - base)
    if layout.codebook_offsets == "shared":
        # One id range serves every codebook: average the codebooks' vectors for each code.
        width = max(layout.codebook_sizes)
        padded = [torch.nn.functional.pad(v, (0, 0, 0, width - v.shape[0])) for v in vectors]
        return torch.stack(padded).mean(dim=0)
    return torch.cat(vectors)


def fit_to_embedding_space(codes: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """Whitens the code vectors and maps them onto the text embeddings' top principal directions,
    scaled by those directions' spread and centred on the text mean."""
    codes = codes.float()
    centred = codes - codes.mean(dim=0)
    u, s, _ = torch.linalg.svd(centred, full_matrices=False)
    rank = int((s > s.max() * 1e-6).sum()) if s.numel() else 0
    whitened = u[:, :rank] * (codes.shape[0] ** 0.5)  # unit variance per direction
    text_centred = text - text.mean(dim=0)
    _, t_s, t_v = torch.linalg.svd(text_centred, full_matrices=False)
    k = min(rank, t_v.shape[0])
    spread = t_s[:k] / (text.shape[0] ** 0.5)
    return text.mean(dim=0) + (whitened[:, :k] * spread) @ t_v[:k]
