"""The Tokenizer template every family fills in.

A tokenizer is an encoder, a quantizer and a decoder, rebuilt from a plain config dataclass. The
base class owns the plumbing that every family shares: input checks, the quantizer call,
`num_codebooks` / `num_tokens` prefixes, `forward` / `encode` / `decode`, batching inputs of
different sizes without letting padding leak into another input's ids, and `save_pretrained`.

A family supplies:
- `encode_latent(x)`: a checked input batch -> channel-last latents (B, *token_shape, dim);
- `decode_latent(latent)`: the inverse direction (latents may hold a prefix of the tokens where
  `max_num_tokens` is set);
- `check_input(x)`, `token_shape_for(input_shape)`, `last_layer_weight()`;
- `input_spec_for(config)`: how media are prepared (an `mmtok.data` InputSpec);
- `vocab_layout(**options)` and `rate_examples()`: where its ids go and what they cost.

A family whose inputs can be any length along time (`streams` True: the audio codec, the video
tokenizer) also implements `encode_stream`, the ids of an input given piece by piece, with memory
bounded by the piece.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from mmtok.data.spec import InputSpec
from mmtok.quantize import Quantizer, QuantizerOutput, build_quantizer
from mmtok.vocab import VocabLayout


@dataclasses.dataclass
class QuantizerConfig:
    """Which quantizer sits at the bottleneck: `kind` plus its build_quantizer arguments."""

    kind: str = "fsq"
    groups: int = 1
    options: dict = dataclasses.field(default_factory=dict)

    def build(self, dim: int) -> Quantizer:
        return build_quantizer(self.kind, dim=dim, groups=self.groups, **self.options)


class Tokenizer(nn.Module):
    family: ClassVar[str] = ""  # the registry's name for it, e.g. "image"
    modality: ClassVar[str] = ""  # "image", "audio", "video", "eeg"
    config_class: ClassVar[type] = object
    token_axes: ClassVar[tuple[str, ...]] = ("t",)  # names of token_shape's axes, e.g. ("h", "w") for a grid
    # True: `encode_stream` takes an input piece by piece along its time axis (axis 2 of the batch).
    streams: ClassVar[bool] = False

    quantizer: Quantizer

    def __init__(self, config: Any):
        super().__init__()
        self.config = config

    # -- what a family supplies ---------------------------------------------------------------------
    def check_input(self, x: torch.Tensor) -> None:
        """Raises ValueError naming what is wrong with a batch `encode` cannot take."""

    def encode_latent(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode_latent(self, latent: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def token_shape_for(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Token grid for one example of `input_shape` (without batch and codebook axes)."""
        raise NotImplementedError

    def last_layer_weight(self) -> torch.Tensor:
        """The decoder's output layer weight (the adaptive GAN weight balances gradients there)."""
        raise NotImplementedError

    @classmethod
    def input_spec_for(cls, config: Any) -> InputSpec:
        """How media are prepared for a tokenizer of this config (training, encode and tokenize alike)."""
        raise NotImplementedError

    def vocab_layout(self, **options) -> VocabLayout:
        """The default layout of this tokenizer's ids in an LLM vocabulary."""
        raise NotImplementedError

    def rate_examples(self) -> list[tuple[str, tuple[int, ...], float, str]]:
        """(label, input shape, amount, unit) for `mmtok inspect`'s token-count and bitrate table,
        e.g. ("256x256", (3, 256, 256), 65536, "pixel")."""
        return []

    def load_initial_weights(self) -> None:
        """Weights a fresh training run starts from instead of random ones (a video tokenizer
        inflates an image tokenizer here). The trainer calls it before the first step; loading an
        artifact or resuming from a checkpoint does not."""

    @property
    def max_num_tokens(self) -> int | None:
        """K for 1-D tokenizers whose first k tokens decode on their own (`encode(x, num_tokens=k)`)."""
        return None

    @property
    def padding_axes(self) -> tuple[int, int] | None:
        """(input axis, token axis) along which the model is causal, so inputs of different lengths
        can share a batch right-padded to the longest; None: they are encoded in separate batches."""
        return None

    @property
    def min_padded_length(self) -> int:
        """Inputs shorter than this along the padding axis are batched only with inputs of their own
        shape: for models whose padding is harmless only past some length (a convolution that
        reflect-pads a short input reads what lies on its right)."""
        return 0

    def bucketed_length(self, length: int) -> int:
        """The length along the padding axis an input of `length` is padded to under
        `encode_many(fixed_batch=...)`: `bucket_length`, for families that take any length."""
        return bucket_length(length)

    # -- the template ---------------------------------------------------------------------------------
    @property
    def num_codebooks(self) -> int:
        return self.quantizer.num_codebooks

    @property
    def codebook_sizes(self) -> list[int]:
        return self.quantizer.codebook_sizes

    def input_spec(self) -> InputSpec:
        return self.input_spec_for(self.config)

    def quantize(
        self, x: torch.Tensor, *, num_codebooks: int | None = None, num_tokens: int | None = None
    ) -> QuantizerOutput:
        self.check_input(x)
        latent = self.encode_latent(x)
        if num_tokens is not None:
            latent = latent[:, : self._checked_num_tokens(num_tokens)]
        options = {} if num_codebooks is None else {"num_codebooks": num_codebooks}
        return self.quantizer(latent, **options)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, QuantizerOutput]:
        out = self.quantize(x)
        return self.decode_latent(out.quantized), out

    @torch.no_grad()
    def encode(self, x: torch.Tensor, *, num_codebooks: int | None = None, num_tokens: int | None = None):
        """ids (B, *token_shape, n): the first n = num_codebooks (default all) codebooks of each
        token; for 1-D tokenizers the first k = num_tokens tokens. A token's ids depend only on its
        own latent vector, so a prefix is exactly the prefix of the full ids."""
        return self.quantize(x, num_codebooks=num_codebooks, num_tokens=num_tokens).ids

    @torch.no_grad()
    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.ndim != len(self.token_axes) + 2:
            axes = ", ".join(["B", *self.token_axes, "num_codebooks"])
            raise ValueError(f"expected ids ({axes}), got {tuple(ids.shape)}")
        if self.max_num_tokens is not None:
            self._checked_num_tokens(ids.shape[1])
        return self.decode_latent(self.quantizer.decode_ids(ids))

    def encode_stream(self, chunks: Iterable[torch.Tensor], **options) -> torch.Tensor:
        """ids (B, *token_shape, n) of the pieces `chunks` put together along the time axis (axis 2
        of `encode`'s input: (B, C, t) audio, (B, 3, t, H, W) video), equal to `encode` of the
        concatenation, with memory bounded by a piece: pieces may be any length, the tokenizer
        cuts and joins them as its streaming rule needs. Pieces are moved to the tokenizer's
        device; options as `encode` (num_codebooks=n). An input below the tokenizer's minimum
        length is the same ValueError as `encode`'s, raised when the pieces run out. Only families
        with `streams` True implement it."""
        name = self.family or type(self).__name__
        raise NotImplementedError(
            f"the {name} tokenizer does not encode inputs piece by piece (streams is False): encode them whole"
        )

    def _stream_pieces(self, chunks: Iterable[torch.Tensor], check: Callable[[torch.Tensor], None]) -> Iterator:
        """The pieces of a stream on this tokenizer's device; the first is checked by `check` and
        every later one must have its shape but along the time axis (2)."""
        device = next(self.parameters()).device
        first = None
        for piece in chunks:
            piece = piece.to(device)
            if first is None:
                check(piece)
                first = tuple(piece.shape)
            elif _without_time(piece.shape) != _without_time(first):
                raise ValueError(
                    f"the pieces of one input may differ only along the time axis (2): got {tuple(piece.shape)} "
                    f"after {first}"
                )
            yield piece

    @torch.no_grad()
    def encode_many(
        self, inputs: list[torch.Tensor], *, fixed_batch: int | None = None, **options
    ) -> list[torch.Tensor]:
        """Each input (one example, without batch axis) -> its ids, as if encoded alone. Inputs of
        one shape share a batch; along `padding_axes` shorter inputs are right-padded into the
        batch of the longest and their ids cut back, which a causal model makes exact.

        `fixed_batch=B` makes the ids bitwise independent of how inputs were grouped, in bf16 too:
        every encode call is a batch of exactly B (filled up with copies of its last input), and
        along the padding axis each input is padded to `bucketed_length` of its own length, so the
        kernels see shapes that depend on the input alone, never on its neighbours (measured on
        CPU: 12 % of a 24 kHz codec's bf16 codes changed with the padded length, none with the
        batch or the position in it)."""
        for x in inputs:  # what this tokenizer refuses alone it refuses in a batch too, never pads into shape
            self.check_input(x[None])
        if fixed_batch is not None and (isinstance(fixed_batch, bool) or int(fixed_batch) < 1):
            raise ValueError(f"fixed_batch must be a positive integer, got {fixed_batch!r}")
        results: list[torch.Tensor | None] = [None] * len(inputs)
        for indices in self._batches(inputs, fixed_batch):
            batch = [inputs[i] for i in indices]
            if self.padding_axes is None:
                ids = self.encode(_filled(torch.stack(batch), fixed_batch), **options)
                for i, example in zip(indices, ids):
                    results[i] = example
                continue
            axis, token_axis = self.padding_axes
            length = max(x.shape[axis] for x in batch)
            if fixed_batch is not None and length >= self.min_padded_length:
                length = self.bucketed_length(length)  # every input of the group has this bucket
            padded = [torch.nn.functional.pad(x, _pad_spec(x, axis, length)) for x in batch]
            ids = self.encode(_filled(torch.stack(padded), fixed_batch), **options)
            for i, example in zip(indices, ids):
                tokens = self.token_shape_for(tuple(inputs[i].shape))[token_axis]
                results[i] = example.narrow(token_axis, 0, tokens)
        return results

    def batch_key(self, x: torch.Tensor, *, bucketed: bool = False) -> tuple:
        """Inputs with equal keys share an encode batch: their shape, but for the padding axis
        (any length, or with `bucketed` the same `bucketed_length`) where the model is causal."""
        shape = list(x.shape)
        if self.padding_axes is not None and shape[self.padding_axes[0]] >= self.min_padded_length:
            axis = self.padding_axes[0]
            shape[axis] = self.bucketed_length(shape[axis]) if bucketed else -1
        return tuple(shape)

    def _batches(self, inputs: list[torch.Tensor], fixed_batch: int | None = None) -> list[list[int]]:
        """Indices of inputs that can share a batch: same shape, or same but for the padding axis
        (with `fixed_batch`: the same bucket of it, in batches of at most `fixed_batch`)."""
        groups: dict[tuple, list[int]] = {}
        for i, x in enumerate(inputs):
            groups.setdefault(self.batch_key(x, bucketed=fixed_batch is not None), []).append(i)
        if fixed_batch is None:
            return list(groups.values())
        return [
            group[start : start + fixed_batch]
            for group in groups.values()
            for start in range(0, len(group), fixed_batch)
        ]

    def _checked_num_tokens(self, k: int) -> int:
        limit = self.max_num_tokens
        if limit is None:
            raise ValueError(f"num_tokens is for 1-D tokenizers; the {self.family} tokenizer's count follows its input")
        if isinstance(k, bool) or int(k) != k or not 1 <= k <= limit:
            raise ValueError(f"num_tokens must be an integer in [1, {limit}], got {k!r}")
        return int(k)

    # -- the artifact -------------------------------------------------------------------------------
    def config_dict(self) -> dict:
        return {"family": self.family, **dataclasses.asdict(self.config)}

    def save_pretrained(
        self,
        directory: str | Path,
        *,
        state_dict: dict[str, torch.Tensor] | None = None,
        vocab: VocabLayout | None = None,
        card: dict | None = None,
    ) -> Path:
        """Writes a frozen artifact (see mmtok.artifact): config.json, model.safetensors, vocab.json,
        README.md. No pickle anywhere."""
        from mmtok.artifact import save_artifact

        return save_artifact(self, directory, state_dict=state_dict, vocab=vocab, card=card)


def _without_time(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (*shape[:2], *shape[3:])


def bucket_length(length: int) -> int:
    """The length an input of `length` is padded to under `encode_many(fixed_batch=...)`: rounded
    up to a multiple of 2^(floor(log2 length) - 3), at most 12.5 % more, and a function of the
    length alone (24,000 samples -> 24,576; 17 frames -> 18)."""
    if length < 8:
        return length
    step = 2 ** (length.bit_length() - 4)
    return -(-length // step) * step


def _filled(batch: torch.Tensor, size: int | None) -> torch.Tensor:
    """`batch` made `size` examples long with copies of its last one (a real input, so no model
    meets an all-zero example it would divide by)."""
    if size is None or len(batch) >= size:
        return batch
    return torch.cat([batch, batch[-1:].expand(size - len(batch), *batch.shape[1:])])


def _pad_spec(x: torch.Tensor, axis: int, length: int) -> list[int]:
    """F.pad's argument that right-pads `x` along `axis` to `length`."""
    axis = axis % x.ndim
    spec = [0] * (2 * (x.ndim - axis))
    spec[-1] = length - x.shape[axis]
    return spec
