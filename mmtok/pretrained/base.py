"""What every converted pretrained tokenizer shares: its config, how its model is rebuilt, and the
Tokenizer hooks it fills in by calling the model's own API.

A converted model is a Tokenizer family like mmtok's own. Its config records the library, the
model class and the model's own config (a plain dict), so `mmtok.load_tokenizer` rebuilds it from
config.json and model.safetensors alone: no hub, no pickle, no remote code. Its `encode` and
`decode` call the model's own methods, so its ids are the model's ids, reshaped to mmtok's int64
(B, *token_shape, codebooks).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import ClassVar

import torch

from mmtok.config import ConfigError
from mmtok.tokenizer import Tokenizer

LIBRARIES = ("transformers", "diffusers")


@dataclasses.dataclass
class PretrainedConfig:
    """The part of a converted tokenizer's config every model has; families add their options."""

    library: str = "transformers"
    model_class: str = ""  # a class of `library`, e.g. "EncodecModel"
    model_config: dict = dataclasses.field(default_factory=dict)  # the model's own config, as it saves it
    source: str = ""  # the hub id or folder it was converted from (provenance only)

    def __post_init__(self):
        if self.library not in LIBRARIES:
            raise ValueError(f"library must be one of {LIBRARIES}, got {self.library!r}")


class Codebooks:
    """The part of mmtok's Quantizer contract that a converted model can offer: codebook sizes,
    and `decode_ids`, ids (..., num_codebooks) -> the model's quantized latent vectors (..., dim),
    which `mmtok.llm_vocab`'s codebook-based embedding init reads. Not an nn.Module: the weights it
    reads belong to the model and are saved once, with it."""

    def __init__(self, sizes: list[int], decode: Callable[[torch.Tensor], torch.Tensor]):
        self.codebook_sizes, self._decode = list(sizes), decode

    @property
    def num_codebooks(self) -> int:
        return len(self.codebook_sizes)

    @property
    def codebook_size(self) -> int | list[int]:
        sizes = set(self.codebook_sizes)
        return self.codebook_sizes[0] if len(sizes) == 1 else list(self.codebook_sizes)

    @torch.no_grad()
    def decode_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (..., n) of the first n codebooks -> the sum of their code vectors (..., dim)."""
        ids = torch.as_tensor(ids).long()
        *lead, given = ids.shape
        if not 1 <= given <= self.num_codebooks:
            raise ValueError(f"expected ids (..., 1..{self.num_codebooks}), got {tuple(ids.shape)}")
        sizes = torch.tensor(self.codebook_sizes[:given], device=ids.device)
        if ids.numel() and ((ids < 0).any() or (ids >= sizes).any()):
            raise ValueError(f"ids out of range for codebook sizes {self.codebook_sizes[:given]}")
        vectors = self._decode(ids.reshape(-1, given))
        return vectors.reshape(*lead, vectors.shape[-1])


def model_class(library: str, name: str) -> type:
    module = importlib.import_module(library)
    cls = getattr(module, name, None)
    if not isinstance(cls, type):
        raise ConfigError(f"{library} has no model class {name!r} (is {library} recent enough?)")
    return cls


def build_model(library: str, name: str, model_config: dict) -> torch.nn.Module:
    """The model from its own config, with its weights left uninitialised (they are loaded next)."""
    cls = model_class(library, name)
    if library == "transformers":
        from transformers.initialization import no_init_weights

        config = cls.config_class.from_dict(dict(model_config))
        with no_init_weights():
            return cls(config)
    from diffusers.models.modeling_utils import no_init_weights

    with no_init_weights():
        return cls.from_config(dict(model_config))


def own_config(model: torch.nn.Module) -> dict:
    """A model's config as a JSON-ready dict (what its save_pretrained writes to config.json),
    without the local path it was loaded from."""
    import json

    if hasattr(model.config, "to_json_string"):  # transformers
        config = json.loads(model.config.to_json_string(use_diff=False))
    else:  # diffusers
        config = json.loads(model.to_json_string())
    config.pop("_name_or_path", None)
    return config


class PretrainedTokenizer(Tokenizer):
    """A frozen tokenizer around a pretrained model. Subclasses name the model class they wrap and
    fill in `model_ids` / `model_decode` with the model's own calls, `codebook_sizes_for`, and
    `code_vectors` for `Codebooks.decode_ids` (besides the usual `check_input`, `token_shape_for`,
    `input_spec_for`, `vocab_layout`, `rate_examples`, and `padding_axes` where it is causal).

    Built from a config alone (as `load_tokenizer` builds it), the model's weights are left
    uninitialised, unwritten memory, until its state dict is loaded: only `mmtok.load_tokenizer`
    and `mmtok convert` make these tokenizers."""

    library: ClassVar[str] = "transformers"
    model_class_name: ClassVar[str] = ""

    def __init__(self, config: PretrainedConfig, model: torch.nn.Module | None = None):
        super().__init__(config)
        if config.model_class != self.model_class_name or config.library != self.library:
            raise ConfigError(
                f"model.model_class: the {self.family} family wraps {self.library}.{self.model_class_name}, "
                f"got {config.library}.{config.model_class}"
            )
        self.check_supported(config)
        self.model = (
            model if model is not None else build_model(config.library, config.model_class, config.model_config)
        )
        self.model.eval().requires_grad_(False)
        self.quantizer = Codebooks(self.codebook_sizes_for(config), self.code_vectors)

    # -- what a model supplies ------------------------------------------------------------------------
    def probe_input(self, generator: torch.Generator) -> torch.Tensor:
        """A small random input as the input spec prepares it: `mmtok convert` checks the artifact's
        ids and decoding against the source model's on it."""
        raise NotImplementedError

    @classmethod
    def default_options(cls, model_config: dict) -> dict:
        """Config fields `mmtok convert` records for this model unless told otherwise."""
        return {}

    @classmethod
    def check_supported(cls, config: PretrainedConfig) -> None:
        """Raises ConfigError for a model configuration the adapter cannot turn into exact ids."""

    def codebook_sizes_for(self, config: PretrainedConfig) -> list[int]:
        """The model's codebook sizes, one per codebook the config's options use (self.model is built)."""
        raise NotImplementedError

    def model_ids(self, x: torch.Tensor) -> torch.Tensor:
        """A checked batch -> the model's own codes as int64 (B, *token_shape, codebooks)."""
        raise NotImplementedError

    def model_decode(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, *token_shape, n) -> the model's own reconstruction, as mmtok's input spec takes media."""
        raise NotImplementedError

    def code_vectors(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (N, n) -> the model's quantized latent vectors (N, dim)."""
        raise NotImplementedError

    # -- the Tokenizer hooks, through the model's own API -------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def encode(self, x: torch.Tensor, *, num_codebooks: int | None = None, num_tokens: int | None = None):
        if num_tokens is not None:
            self._checked_num_tokens(num_tokens)  # says why: only 1-D tokenizers take it
        self.check_input(x)
        ids = self.model_ids(x).long()
        if num_codebooks is None:
            return ids
        if isinstance(num_codebooks, bool) or not 1 <= num_codebooks <= self.num_codebooks:
            raise ValueError(f"num_codebooks must be in [1, {self.num_codebooks}], got {num_codebooks!r}")
        # Every model here quantizes residually (or has one codebook): a prefix of codebooks is the
        # model's own encoding at that lower rate.
        return ids[..., :num_codebooks]

    @torch.no_grad()
    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.ndim != len(self.token_axes) + 2:
            axes = ", ".join(["B", *self.token_axes, "num_codebooks"])
            raise ValueError(f"expected ids ({axes}), got {tuple(ids.shape)}")
        if not 1 <= ids.shape[-1] <= self.num_codebooks:
            raise ValueError(f"ids hold {ids.shape[-1]} codebooks; this model has {self.num_codebooks}")
        return self.model_decode(ids.long())

    def quantize(self, x, **options):
        raise NotImplementedError(f"the {self.family} tokenizer is a converted pretrained model: use encode")

    def forward(self, x):
        raise NotImplementedError(
            f"the {self.family} tokenizer is a converted pretrained model: mmtok does not train it"
        )

    def last_layer_weight(self) -> torch.Tensor:
        raise NotImplementedError(f"the {self.family} tokenizer is not trained by mmtok")


def checked(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def check_bandwidth(config, model_name: str) -> None:
    """`config.bandwidth` (kbps) is None or one the model offers."""
    bandwidths = config.model_config.get("target_bandwidths", [])
    checked(
        config.bandwidth is None or config.bandwidth in bandwidths,
        f"model.bandwidth: {config.bandwidth} is not one of this {model_name}'s bandwidths {bandwidths}",
    )


def check_num_quantizers(config, low: int, high: int) -> None:
    """`config.num_quantizers` is None or in [low, high]."""
    checked(
        config.num_quantizers is None or low <= config.num_quantizers <= high,
        f"model.num_quantizers: must be in [{low}, {high}], got {config.num_quantizers}",
    )
