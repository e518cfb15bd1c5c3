"""The Tokenizer base class every modality's tokenizer subclasses.

A tokenizer is an encoder, a quantizer and a decoder, rebuilt from a plain config dataclass.
Contract: `forward(x) -> (recon, QuantizerOutput)`, `encode(x) -> ids (B, *token_shape,
num_codebooks)`, `decode(ids) -> x`, `token_shape_for(input_shape)`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from mmtok.quantize import Quantizer, QuantizerOutput
from mmtok.vocab import VocabLayout


@dataclasses.dataclass
class QuantizerConfig:
    """Which quantizer sits at the bottleneck: `kind` plus its build_quantizer arguments."""

    kind: str = "fsq"
    groups: int = 1
    options: dict = dataclasses.field(default_factory=dict)

    def build(self, dim: int) -> Quantizer:
        from mmtok.quantize import build_quantizer

        return build_quantizer(self.kind, dim=dim, groups=self.groups, **self.options)


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

    # -- media in and out, and where the ids go in an LLM vocabulary (each family) ---------------
    def media_to_tensor(self, media: Any) -> torch.Tensor:
        """A path, array or tensor of this modality -> the batched tensor `encode` takes."""
        raise NotImplementedError

    def tensor_to_media(self, x: torch.Tensor) -> Any:
        """`decode`'s tensor -> plain media (e.g. uint8 pixels)."""
        raise NotImplementedError

    def vocab_layout(self, **options) -> VocabLayout:
        """The default layout of this tokenizer's ids in an LLM vocabulary."""
        raise NotImplementedError

    def input_spec(self) -> dict:
        """What inputs look like (size, sample rate, normalisation), for config.json and model cards."""
        return {}

    def rate_examples(self) -> list[tuple[str, tuple[int, ...], float, str]]:
        """(label, input shape, amount, unit) for `mmtok inspect`'s token-count and bitrate table,
        e.g. ("256x256", (3, 256, 256), 65536, "pixel")."""
        return []

    # -- conveniences shared by every family ----------------------------------------------------
    @property
    def num_codebooks(self) -> int:
        return self.quantizer.num_codebooks

    @property
    def codebook_sizes(self) -> list[int]:
        return self.quantizer.codebook_sizes

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
        """Writes a frozen artifact: config.json, model.safetensors (weights and buffers, no
        optimizer or discriminator), vocab.json and a README.md model card. No pickle anywhere."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = state_dict if state_dict is not None else self.state_dict()
        tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
        weights = directory / WEIGHTS_FILE
        save_file(tensors, str(weights), metadata={"format": "pt", "mmtok_family": self.family})
        layout = vocab if vocab is not None else self.vocab_layout()
        layout.save(directory / VOCAB_FILE)
        config = {
            "mmtok_version": mmtok_version(),
            "family": self.family,
            "modality": self.modality,
            "model": dataclasses.asdict(self.config),
            "input": self.input_spec(),
            "weights_sha256": file_sha256(weights),
            "card": card or {},
        }
        (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
        (directory / "README.md").write_text(model_card(config, layout, card or {}))
        return directory


# -- the frozen artifact ----------------------------------------------------------------------------
CONFIG_FILE, WEIGHTS_FILE, VOCAB_FILE = "config.json", "model.safetensors", "vocab.json"
# Files that would be unpickled by torch.load and friends: a tokenizer directory must hold none.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


class ArtifactError(ValueError):
    pass


def mmtok_version() -> str:
    from mmtok import __version__

    return __version__


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_card(config: dict, layout: VocabLayout, card: dict) -> str:
    lines = [
        "---",
        "library_name: mmtok",
        f"tags: [mmtok, tokenizer, {config['modality']}]",
        "---",
        "",
        f"# mmtok {config['family']} tokenizer",
        "",
        f"- modality: {config['modality']}",
        f"- quantizer: {config['model'].get('quantizer', {})}",
        f"- codebooks: {layout.num_codebooks} x {layout.codebook_sizes}",
        f"- vocabulary ids: {layout.size} from base offset {layout.base_offset}",
        f"- input: {config['input']}",
        f"- weights sha256: {config['weights_sha256']}",
        "",
    ]
    for key in ("training_data", "steps", "weights"):
        if key in card:
            lines.append(f"- {key.replace('_', ' ')}: {card[key]}")
    if card.get("eval"):
        lines += ["", "## Evaluation", "", "| metric | value |", "|---|---|"]
        lines += [
            f"| {name} | {value:.4g} |" if isinstance(value, float) else f"| {name} | {value} |"
            for name, value in card["eval"].items()
        ]
    lines += ["", "Load with `mmtok.load_tokenizer(path)`; ids sit in an LLM vocabulary as vocab.json says.", ""]
    return "\n".join(lines)


class FrozenTokenizer:
    """A loaded tokenizer for inference: eval mode, no gradients, media in and media out."""

    def __init__(self, model: Tokenizer, vocab: VocabLayout, config: dict, path: Path | None = None):
        self.model, self.vocab, self.config, self.path = model, vocab, config, path

    @property
    def modality(self) -> str:
        return self.model.modality

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device) -> FrozenTokenizer:
        self.model.to(device)
        return self

    @torch.inference_mode()
    def encode(self, media: Any, **options) -> torch.Tensor:
        """Media (path, array or tensor) -> ids (B, *token_shape, num_codebooks)."""
        x = self.model.media_to_tensor(media).to(self.device)
        return self.model.encode(x, **options)

    @torch.inference_mode()
    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.decode(torch.as_tensor(ids).to(self.device))

    def decode_media(self, ids: torch.Tensor) -> Any:
        return self.model.tensor_to_media(self.decode(ids))

    def to_llm_ids(self, media: Any, **options) -> list[torch.Tensor]:
        """One framed LLM id sequence per example."""
        return [self.vocab.to_llm_ids(example) for example in self.encode(media, **options)]

    def __repr__(self) -> str:
        return f"FrozenTokenizer({self.model.family}, codebooks={self.vocab.codebook_sizes}, path={self.path})"


def load_tokenizer(path: str | Path, *, device: str | torch.device = "cpu", verify: bool = True) -> FrozenTokenizer:
    """Loads a directory written by save_pretrained / `mmtok export` (or a hub repo id where a hub
    can be reached). Never unpickles: safetensors and JSON only, and a directory holding a pickle
    file is refused. The weights' sha256 must match the one recorded at export."""
    from safetensors.torch import load_file

    directory = Path(path)
    if not directory.is_dir():
        directory = _download(str(path))
    pickles = sorted(p.name for p in directory.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickles:
        raise ArtifactError(f"{directory} holds pickle files {pickles}; mmtok artifacts are safetensors + JSON only")
    for name in (CONFIG_FILE, WEIGHTS_FILE, VOCAB_FILE):
        if not (directory / name).is_file():
            raise ArtifactError(f"{directory} is not an mmtok tokenizer: {name} is missing")
    config = json.loads((directory / CONFIG_FILE).read_text())
    if verify and file_sha256(directory / WEIGHTS_FILE) != config.get("weights_sha256"):
        raise ArtifactError(
            f"{directory / WEIGHTS_FILE} does not match the checksum recorded at export (tampered or corrupt)"
        )

    from mmtok.models import build_tokenizer  # the registry: the one place core names model families

    model = build_tokenizer({"family": config["family"], **config["model"]})
    model.load_state_dict(load_file(str(directory / WEIGHTS_FILE)), strict=True)
    model.eval().requires_grad_(False).to(device)
    return FrozenTokenizer(model, VocabLayout.load(directory / VOCAB_FILE), config, directory)


def _download(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.md"]))
    except Exception as error:  # no such local folder and no reachable hub: say both
        raise ArtifactError(
            f"{repo_id!r} is not a local directory and could not be fetched from a hub: {error}"
        ) from None
