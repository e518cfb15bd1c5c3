"""What `mmtok eval` scores: a system turns a prepared item into its reconstruction at some bits.

- `TokenizerSystem`: an mmtok tokenizer (exported, converted, or fresh from a trainer): encode and
  decode timed apart, its ids counted for codebook health, and its sweeps (a 1-D tokenizer's first
  k tokens, a residual tokenizer's first n codebooks).
- `ReconstructionSystem`: anything else with a reconstruct function and a bit count, such as a
  peer's model (a diffusers VQModel, a transformers DAC) trained beside mmtok's: it is scored by
  the same suite on the same prepared items, and appears in the same tables, curves and grids.

Bits are an upper bound for ids: positions x the sum over the used codebooks of log2(size).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence

import torch

from mmtok.quantize.base import bits_per_position

Setting = tuple[str, int]  # ("k", 4): the first 4 tokens; ("codebooks", 2): the first 2 codebooks


@dataclasses.dataclass
class Pass:
    """One item through a system: its reconstruction, what it cost and how long it took."""

    decoded: torch.Tensor
    bits: float
    ids: torch.Tensor | None = None  # None: the system has no ids (no codebook health)
    encode_seconds: float | None = None  # None: the system does not split encode from decode
    decode_seconds: float = 0.0


def bits_of(ids: torch.Tensor, codebook_sizes: Sequence[int]) -> float:
    """Bits of one example's ids (1, *positions, codebooks used)."""
    used = ids.shape[-1]
    return math.prod(ids.shape[1:-1]) * bits_per_position(used, list(codebook_sizes)[:used])


def powers_of_two_through(total: int) -> list[int]:
    """1, 2, 4, ... up to `total`, and `total` itself."""
    return sorted({*(2**i for i in range(total.bit_length()) if 2**i <= total), total})


class System:
    """The interface the harness uses. `codebook_sizes` empty: no ids to count."""

    name: str = ""
    modality: str = ""
    family: str = ""
    path: str | None = None
    input_spec = None
    codebook_sizes: list[int] = []
    num_codebooks: int = 0
    model = None  # the tokenizer model, where suites need its config (EEG: the patch length)

    def settings(self, x: torch.Tensor) -> list[Setting]:
        """The lower-rate settings the system can also run at (its sweep), full setting included."""
        return []

    def run(self, x: torch.Tensor, setting: Setting | None = None) -> Pass:
        raise NotImplementedError

    def is_full(self, setting: Setting | None, ids: torch.Tensor | None) -> bool:
        """Whether `setting` is what a plain run gives (its sweep row is the main row)."""
        return setting is None


def _clock(device: torch.device) -> float:
    """perf_counter after the device's queued work is done (CUDA kernels run asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


class TokenizerSystem(System):
    """A FrozenTokenizer as a system (`from_model` wraps a trained, unexported Tokenizer)."""

    def __init__(self, name: str, frozen):
        self.name, self.frozen = name, frozen
        self.modality, self.family, self.model = frozen.modality, frozen.family, frozen.model
        self.path = str(frozen.path) if frozen.path else None
        self.input_spec = frozen.input_spec
        self.codebook_sizes, self.num_codebooks = list(frozen.codebook_sizes), frozen.num_codebooks
        self._full: tuple[torch.Tensor, torch.Tensor] | None = None  # (input, its ids): prefixes reuse them

    @classmethod
    def from_model(cls, name: str, model) -> TokenizerSystem:
        from mmtok.artifact import FrozenTokenizer

        return cls(name, FrozenTokenizer(model.eval(), model.vocab_layout(), {}))

    def settings(self, x: torch.Tensor) -> list[Setting]:
        if getattr(self.model, "max_num_tokens", None):
            return [("k", k) for k in powers_of_two_through(self.model.max_num_tokens)]
        if self.num_codebooks < 2:
            return []
        try:
            self.frozen.encode_tensor(x, num_codebooks=1)
        except (ValueError, TypeError, NotImplementedError):
            return []
        return [("codebooks", n) for n in powers_of_two_through(self.num_codebooks)]

    def is_full(self, setting: Setting | None, ids: torch.Tensor | None) -> bool:
        return setting is None or setting[1] == ids.shape[1 if setting[0] == "k" else -1]

    def _encode(self, x: torch.Tensor, setting: Setting | None) -> torch.Tensor:
        if setting is not None and setting[0] == "k":  # a prefix of the full ids is exactly encode(num_tokens=k)
            if self._full is None or self._full[0] is not x:
                self._full = (x, self.frozen.encode_tensor(x))
            return self._full[1][:, : setting[1]]
        ids = self.frozen.encode_tensor(x, **({"num_codebooks": setting[1]} if setting else {}))
        if setting is None:
            self._full = (x, ids)
        return ids

    @torch.inference_mode()
    def run(self, x: torch.Tensor, setting: Setting | None = None) -> Pass:
        device = self.frozen.device
        started = _clock(device)
        ids = self._encode(x, setting)
        encoded = _clock(device)
        decoded = self.frozen.decode(ids)
        return Pass(decoded, bits_of(ids, self.codebook_sizes), ids, encoded - started, _clock(device) - encoded)


class ReconstructionSystem(System):
    """A system given as functions: `reconstruct(x, setting)` -> the reconstruction of a prepared
    batch, `bits(x, setting)` -> what it costs; `settings` lists the sweep it supports."""

    def __init__(
        self,
        name: str,
        modality: str,
        input_spec,
        reconstruct: Callable[[torch.Tensor, Setting | None], torch.Tensor],
        bits: Callable[[torch.Tensor, Setting | None], float],
        settings: Sequence[Setting] = (),
        full_setting: Setting | None = None,
        family: str = "peer",
    ):
        self.name, self.modality, self.input_spec, self.family = name, modality, input_spec, family
        self._reconstruct, self._bits, self._settings = reconstruct, bits, list(settings)
        self.full_setting = full_setting  # the setting a plain run (setting None) is: its sweep row is the main row

    def settings(self, x: torch.Tensor) -> list[Setting]:
        return list(self._settings)

    def is_full(self, setting: Setting | None, ids=None) -> bool:
        return setting is None or setting == self.full_setting

    @torch.inference_mode()
    def run(self, x: torch.Tensor, setting: Setting | None = None) -> Pass:
        started = time.perf_counter()
        decoded = self._reconstruct(x, setting)
        return Pass(decoded, float(self._bits(x, setting)), decode_seconds=time.perf_counter() - started)
