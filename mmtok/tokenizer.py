"""The Tokenizer base class every modality's tokenizer subclasses.

A tokenizer is an encoder, a quantizer and a decoder, rebuilt from a plain config dataclass.
Contract: `forward(x) -> (recon, QuantizerOutput)`, `encode(x) -> ids (B, *token_shape,
num_codebooks)`, `decode(ids) -> x`, `token_shape_for(input_shape)`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from mmtok.quantize import Quantizer, QuantizerOutput


@dataclasses.dataclass
class QuantizerConfig:
    """Which quantizer sits at the bottleneck: `kind` plus its build_quantizer arguments."""

    kind: str = "fsq"
    groups: int = 1
    options: dict = dataclasses.field(default_factory=dict)


class Tokenizer(nn.Module):
    family: ClassVar[str] = ""  # registry name, e.g. "image"
    modality: ClassVar[str] = ""  # "image", "audio", "video", "eeg"
    config_class: ClassVar[type] = object

    quantizer: Quantizer

    def __init__(self, config: Any):
        super().__init__()
        self.config = config

    # -- the contract ---------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, QuantizerOutput]:
        raise NotImplementedError

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def token_shape_for(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Token grid for one example of `input_shape` (without batch and codebook axes)."""
        raise NotImplementedError

    def last_layer_weight(self) -> torch.Tensor:
        """The decoder's output layer weight (the adaptive GAN weight balances gradients there)."""
        raise NotImplementedError

    # -- conveniences shared by every family ----------------------------------------------------
    @property
    def num_codebooks(self) -> int:
        return self.quantizer.num_codebooks

    @property
    def codebook_sizes(self) -> list[int]:
        return self.quantizer.codebook_sizes

    def config_dict(self) -> dict:
        return {"family": self.family, **dataclasses.asdict(self.config)}

    def save_pretrained(self, directory: str | Path, state_dict: dict[str, torch.Tensor] | None = None) -> Path:
        """config.json + model.safetensors (weights and buffers only; no pickle)."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = state_dict if state_dict is not None else self.state_dict()
        tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
        save_file(tensors, str(directory / "model.safetensors"))
        (directory / "config.json").write_text(json.dumps(self.config_dict(), indent=2) + "\n")
        return directory
