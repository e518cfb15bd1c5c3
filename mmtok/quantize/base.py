"""The one quantizer contract every kind satisfies.

Subclasses implement `_quantize` and `_decode` on flat `(N, dim)` / `(N, num_codebooks)` tensors;
this base class owns shape handling (any leading shape, channel-last) and input validation, so no
kind re-implements it.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from einops import pack, unpack
from torch import nn


@dataclass
class QuantizerOutput:
    quantized: torch.Tensor  # same shape as the input, straight-through gradients
    ids: torch.Tensor  # int64, (..., num_codebooks)
    loss: torch.Tensor  # scalar: weighted sum of the auxiliary losses
    losses: dict[str, torch.Tensor] = field(default_factory=dict)  # unweighted breakdown, for logging


def bits_per_position(num_codebooks: int, codebook_size: int | Sequence[int]) -> float:
    """Bits one token position carries: the sum over codebooks of log2(codebook size).
    `codebook_size` is one size for every codebook or a list with one per codebook."""
    sizes = [codebook_size] * num_codebooks if isinstance(codebook_size, int) else list(codebook_size)
    if len(sizes) != num_codebooks:
        raise ValueError(f"got {len(sizes)} codebook sizes for {num_codebooks} codebooks")
    if num_codebooks <= 0 or any(s < 1 for s in sizes):
        raise ValueError("num_codebooks and codebook sizes must be positive")
    return sum(math.log2(s) for s in sizes)


def zero_loss(like: torch.Tensor) -> torch.Tensor:
    return like.new_zeros((), dtype=torch.float32)


class Quantizer(nn.Module):
    """Base class: `forward(z)` for z of shape (..., dim); `decode_ids(ids)` inverts the id part."""

    kind: str = ""
    dim: int
    num_codebooks: int
    # Residual kinds accept a prefix of their codebooks in `decode_ids` (coarse-to-fine ids).
    accepts_codebook_prefix: bool = False

    _codebook_size: int  # set by kinds with a fixed size; others override `codebook_size`

    @property
    def codebook_size(self) -> int | list[int]:
        """Codes per codebook (a list where codebooks differ)."""
        return self._codebook_size

    @property
    def codebook_sizes(self) -> list[int]:
        """Codes per codebook, always as a list of length num_codebooks."""
        size = self.codebook_size
        return list(size) if isinstance(size, (list, tuple)) else [size] * self.num_codebooks

    def forward(self, z: torch.Tensor, num_codebooks: int | None = None) -> QuantizerOutput:
        """`num_codebooks=n` keeps the first n codebooks: for residual kinds the ids are the first n
        columns of the full ids and `quantized` decodes from them; other kinds take only n = all."""
        depth = self.checked_num_codebooks(num_codebooks)
        if depth == self.num_codebooks:
            return self._apply_flat(z, self._quantize)
        return self._apply_flat(z, lambda flat: self._quantize_prefix(flat, depth))

    def checked_num_codebooks(self, num_codebooks: int | None) -> int:
        """The number of leading codebooks to use; a ValueError naming the allowed range otherwise."""
        if num_codebooks is None:
            return self.num_codebooks
        allowed = f"in [1, {self.num_codebooks}]" if self.accepts_codebook_prefix else f"{self.num_codebooks}"
        try:
            if isinstance(num_codebooks, bool):
                raise TypeError
            num_codebooks = operator.index(num_codebooks)  # ints of numpy and 0-d integer tensors too
        except TypeError:
            raise ValueError(f"num_codebooks must be an integer {allowed}, got {num_codebooks!r}") from None
        if self.accepts_codebook_prefix and 1 <= num_codebooks <= self.num_codebooks:
            return num_codebooks
        if num_codebooks == self.num_codebooks:
            return num_codebooks
        reason = "" if self.accepts_codebook_prefix else f" ({self.kind!r} is not residual: no prefix of its ids)"
        raise ValueError(f"num_codebooks must be {allowed} for {self.kind!r}, got {num_codebooks}{reason}")

    def _apply_flat(self, z: torch.Tensor, quantize_flat) -> QuantizerOutput:
        """Validates z, runs `quantize_flat` on its (N, dim) view and restores the leading shape."""
        if not torch.is_tensor(z) or not z.is_floating_point():
            raise TypeError(
                f"{type(self).__name__} expects a floating-point tensor, got {getattr(z, 'dtype', type(z))}"
            )
        if z.ndim < 1 or z.shape[-1] != self.dim:
            raise ValueError(
                f"{type(self).__name__} expects channel-last input (..., {self.dim}), got shape {tuple(z.shape)}"
            )
        flat, packed_shape = pack([z], "* d")
        out = quantize_flat(flat)
        [quantized] = unpack(out.quantized, packed_shape, "* d")
        [ids] = unpack(out.ids, packed_shape, "* c")
        return QuantizerOutput(quantized=quantized, ids=ids, loss=out.loss, losses=out.losses)

    def decode_ids(self, ids: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(ids) or ids.is_floating_point() or ids.is_complex():
            raise TypeError(f"decode_ids expects an integer tensor, got {getattr(ids, 'dtype', type(ids))}")
        given = ids.shape[-1] if ids.ndim else 0
        valid = 1 <= given <= self.num_codebooks if self.accepts_codebook_prefix else given == self.num_codebooks
        if not valid:
            want = f"1..{self.num_codebooks}" if self.accepts_codebook_prefix else str(self.num_codebooks)
            raise ValueError(f"ids must have shape (..., {want}) for {self.kind!r}, got {tuple(ids.shape)}")
        sizes = torch.tensor(self.codebook_sizes[:given], device=ids.device)
        if ids.numel() and ((ids < 0).any() or (ids >= sizes).any()):
            raise ValueError(f"ids out of range for codebook sizes {self.codebook_sizes[:given]}")
        flat, packed_shape = pack([ids.long()], "* c")
        [decoded] = unpack(self._decode(flat), packed_shape, "* d")
        return decoded

    # -- what each kind implements ------------------------------------------------------------
    def _quantize(self, x: torch.Tensor) -> QuantizerOutput:
        """x: (N, dim) -> quantized (N, dim), ids (N, num_codebooks)."""
        raise NotImplementedError

    def _decode(self, ids: torch.Tensor) -> torch.Tensor:
        """ids: (N, c) int64 with c == num_codebooks (or a prefix) -> (N, dim)."""
        raise NotImplementedError

    def _quantize_prefix(self, x: torch.Tensor, depth: int) -> QuantizerOutput:
        """Residual kinds: x (N, dim) -> the first `depth` codebooks' ids (N, depth) and their decoding."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return (
            f"kind={self.kind!r}, dim={self.dim}, num_codebooks={self.num_codebooks}, "
            f"codebook_size={self.codebook_size}"
        )
