"""The frozen artifact: a directory a tokenizer is saved to and loaded from, and the loaded object.

    config.json         family, modality, model config, input spec, mmtok version, weights sha256, card data
    model.safetensors   weights and buffers (no optimizer, no discriminator)
    vocab.json          where the ids go in an LLM vocabulary (mmtok.vocab.VocabLayout)
    README.md           a Hugging Face model card

Loading never unpickles: safetensors and JSON only, a directory holding a pickle file is refused,
and the weights must match the checksum recorded at export.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import stat
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import torch

from mmtok.storage import looks_like_path
from mmtok.vocab import VocabLayout

if TYPE_CHECKING:
    from mmtok.tokenizer import Tokenizer

CONFIG_FILE, WEIGHTS_FILE, VOCAB_FILE, CARD_FILE = "config.json", "model.safetensors", "vocab.json", "README.md"
# Files that would be unpickled by torch.load and friends: a tokenizer directory must hold none.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")

logger = logging.getLogger(__name__)


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


def save_artifact(
    model: Tokenizer,
    directory: str | Path,
    *,
    state_dict: dict[str, torch.Tensor] | None = None,
    vocab: VocabLayout | None = None,
    card: dict | None = None,
) -> Path:
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = state_dict if state_dict is not None else model.state_dict()
    weights = directory / WEIGHTS_FILE
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    save_file(tensors, str(weights), metadata={"format": "pt", "mmtok_family": model.family})
    layout = vocab if vocab is not None else model.vocab_layout()
    layout.save(directory / VOCAB_FILE)
    config = {
        "mmtok_version": mmtok_version(),
        "family": model.family,
        "modality": model.modality,
        "model": dataclasses.asdict(model.config),
        "input": model.input_spec().to_json(),
        "weights_sha256": file_sha256(weights),
        "vocab_sha256": file_sha256(directory / VOCAB_FILE),
        "card": card or {},
    }
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    model_card(config, layout).save(directory / CARD_FILE)
    # safetensors writes its file 0600 and an overwritten file keeps its old mode: give every file
    # the mode a new file gets under the user's umask, so whoever may read the folder can load it.
    mode = new_file_mode(directory)
    for name in (CONFIG_FILE, WEIGHTS_FILE, VOCAB_FILE, CARD_FILE):
        os.chmod(directory / name, mode)
    return directory


def new_file_mode(directory: Path) -> int:
    """0o666 & ~umask (and whatever a default ACL of `directory` adds), read off a probe file:
    os.umask can only be read by setting it, which races with other threads creating files."""
    probe = directory / f".mode-probe-{uuid.uuid4().hex}"
    handle = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        return stat.S_IMODE(os.fstat(handle).st_mode)
    finally:
        os.close(handle)
        probe.unlink()


def model_card(config: dict, layout: VocabLayout):
    """A Hugging Face model card (huggingface_hub.ModelCard: its metadata header and file format)."""
    from huggingface_hub import ModelCard, ModelCardData

    card = config["card"]
    data = ModelCardData(library_name="mmtok", tags=["mmtok", "tokenizer", config["modality"]])
    if re.fullmatch(r"[\w.+-]+", card.get("license", "")):  # a licence id, as a source's card states it
        data.license = card["license"]
    lines = [f"# mmtok {config['family']} tokenizer", "", f"- modality: {config['modality']}"]
    if "quantizer" in config["model"]:
        lines.append(f"- quantizer: {config['model']['quantizer']}")
    lines += [
        f"- codebooks: {layout.num_codebooks} x {layout.codebook_sizes}",
        f"- vocabulary ids: {layout.size} from base offset {layout.base_offset}",
        f"- input: {config['input']}",
        f"- weights sha256: {config['weights_sha256']}",
    ]
    keys = ("source", "license", "converted_from", "training_data", "steps", "weights")
    lines += [f"- {key.replace('_', ' ')}: {card[key]}" for key in keys if key in card]
    if card.get("eval"):
        lines += ["", "## Evaluation", "", "| metric | value |", "|---|---|"]
        lines += [f"| {name} | {_number(value)} |" for name, value in card["eval"].items()]
    lines += ["", "Load with `mmtok.load_tokenizer(path)`; ids sit in an LLM vocabulary as vocab.json says.", ""]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class EncodedMedia(NamedTuple):
    ids: torch.Tensor  # (B, *token_shape, num_codebooks)
    info: list[dict]  # per example: the media's metadata and what preparation did (an audio gain, ...)


class FrozenTokenizer:
    """A loaded tokenizer for inference: eval mode, no gradients, media in and media out."""

    def __init__(self, model: Tokenizer, vocab: VocabLayout, config: dict, path: Path | None = None):
        self.model, self.vocab, self.config, self.path = model, vocab, config, path
        self.input_spec = model.input_spec()

    family = property(lambda self: self.model.family)
    modality = property(lambda self: self.model.modality)
    quantizer = property(lambda self: self.model.quantizer)
    num_codebooks = property(lambda self: self.model.num_codebooks)
    codebook_sizes = property(lambda self: self.model.codebook_sizes)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device) -> FrozenTokenizer:
        self.model.to(device)
        return self

    def prepare(self, media: Any):
        """Media -> `Prepared(tensor, info)` through the tokenizer's input spec (mmtok.data)."""
        return self.input_spec.prepare(media)

    def media_to_tensor(self, media: Any) -> torch.Tensor:
        return self.prepare(media).tensor

    @torch.inference_mode()
    def encode_tensor(self, x: torch.Tensor, **options) -> torch.Tensor:
        """A prepared batch -> ids (B, *token_shape, num_codebooks)."""
        return self.model.encode(x.to(self.device), **options)

    @torch.inference_mode()
    def encode_many(self, inputs: list[torch.Tensor], **options) -> list[torch.Tensor]:
        """Prepared examples of any sizes -> their ids, each as if encoded alone."""
        return self.model.encode_many([x.to(self.device) for x in inputs], **options)

    streams = property(lambda self: self.model.streams)

    @torch.inference_mode()
    def encode_stream(self, pieces, **options) -> torch.Tensor:
        """A long example's prepared pieces (`input_spec.prepare_stream`) -> its ids, equal to the
        whole example's, with memory bounded by the piece (audio and video tokenizers)."""
        return self.model.encode_stream(pieces, **options)

    def encode_media(self, media: Any, **options) -> EncodedMedia:
        """Media (paths, bytes, arrays, tensors) -> ids and what preparation did to each example."""
        prepared = self.prepare(media)
        return EncodedMedia(self.encode_tensor(prepared.tensor, **options), prepared.info)

    def encode(self, media: Any, **options) -> torch.Tensor:
        """Media -> ids (B, *token_shape, num_codebooks); options: num_codebooks=n, num_tokens=k."""
        return self.encode_media(media, **options).ids

    @torch.inference_mode()
    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.decode(torch.as_tensor(ids).to(self.device))

    def decode_media(self, ids: torch.Tensor | EncodedMedia, info: list[dict] | None = None) -> Any:
        """ids (or `encode_media`'s result) -> plain media; with the info, preparation is undone
        where it can be (an audio clip gets its own level back)."""
        if isinstance(ids, EncodedMedia):
            ids, info = ids.ids, info if info is not None else ids.info
        return self.input_spec.to_media(self.decode(ids), info)

    def vocab_layout(self, **options) -> VocabLayout:
        """The tokenizer's layout with other options (offsets, flatten order, row markers)."""
        return self.model.vocab_layout(**options) if options else self.vocab

    def to_llm_ids(self, media: Any, **options) -> list[torch.Tensor]:
        """One framed LLM id sequence per example."""
        return [self.vocab.to_llm_ids(example) for example in self.encode(media, **options)]

    def token_shape_for(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return self.model.token_shape_for(input_shape)

    def rate_examples(self) -> list[tuple[str, tuple[int, ...], float, str]]:
        return self.model.rate_examples()

    def __repr__(self) -> str:
        return f"FrozenTokenizer({self.family}, codebooks={self.vocab.codebook_sizes}, path={self.path})"


def load_tokenizer(path: str | Path, *, device: str | torch.device = "cpu", verify: bool = True) -> FrozenTokenizer:
    """Loads a directory written by save_pretrained / `mmtok export` (or a hub repo id where a hub
    can be reached). Never unpickles: safetensors and JSON only, and a directory holding a pickle
    file is refused. The weights' and vocab.json's sha256 must match those recorded at export, and
    vocab.json must describe the model config.json builds (modality, codebooks, token axes, id
    ranges); anything else is an ArtifactError naming the file and the field.

    "hf:ORG/NAME[@REVISION]" is a pretrained model from a hub (EnCodec, Mimi, Chameleon, ...),
    converted once into ~/.cache/mmtok (see mmtok.pretrained) and loaded like any artifact."""
    if str(path).startswith("hf:"):
        from mmtok.pretrained import load_hub_model

        return load_hub_model(str(path), device=device)
    directory = _local_or_hub_directory(path)
    pickles = sorted(p.name for p in directory.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickles:
        raise ArtifactError(f"{directory} holds pickle files {pickles}; mmtok artifacts are safetensors + JSON only")
    for name in (CONFIG_FILE, WEIGHTS_FILE, VOCAB_FILE):
        if not (directory / name).is_file():
            raise ArtifactError(f"{directory} is not an mmtok tokenizer: {name} is missing")
    config = _read_config(directory / CONFIG_FILE)
    if verify:
        _verify_checksums(directory, config)
    vocab_path = directory / VOCAB_FILE
    vocab_data = _read_json(vocab_path)
    try:
        layout = VocabLayout.from_json(vocab_data)
        layout.check_stored_fields(vocab_data)
    except ValueError as error:
        raise ArtifactError(f"{vocab_path}: {error}") from None

    from mmtok.models.registry import build_tokenizer  # the one place core names model families

    try:
        model = build_tokenizer({"family": config["family"], **config["model"]})
    except (ValueError, TypeError) as error:
        raise ArtifactError(f"{directory / CONFIG_FILE}: the model config does not build: {error}") from None
    _load_weights(model, directory / WEIGHTS_FILE)
    check_vocab_matches_model(layout, config, model, vocab_path)
    model.eval().requires_grad_(False).to(device)
    return FrozenTokenizer(model, layout, config, directory)


def _local_or_hub_directory(path: str | Path) -> Path:
    """A local folder, or a hub snapshot for a repo id. An argument that names a local path is never
    sent to the hub: a typo in it gets "does not exist", not the hub's repo-id rules."""
    directory = Path(path).expanduser()
    if directory.is_dir():
        return directory
    if directory.exists():
        raise ArtifactError(f"{path} is a file, not a tokenizer folder (give the folder holding {CONFIG_FILE})")
    if looks_like_path(str(path)):
        raise ArtifactError(f"tokenizer folder {path} does not exist")
    return _download(str(path))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ArtifactError(f"{path} is not readable JSON: {error}") from None


def _read_config(path: Path) -> dict:
    config = _read_json(path)
    if not isinstance(config, dict):
        raise ArtifactError(f"{path} must hold a JSON object, got {type(config).__name__}")
    expected = {"family": str, "modality": str, "model": dict}
    for key, kind in expected.items():
        if key not in config:
            raise ArtifactError(f"{path} has no {key!r}: it is not an mmtok tokenizer config (re-export it)")
        if not isinstance(config[key], kind):
            raise ArtifactError(f"{path}: {key!r} must be a {kind.__name__}, got {config[key]!r}")
    return config


def _verify_checksums(directory: Path, config: dict) -> None:
    for name, key in ((WEIGHTS_FILE, "weights_sha256"), (VOCAB_FILE, "vocab_sha256")):
        if key not in config and name == VOCAB_FILE:
            # Artifacts exported before vocab.json was checksummed: its layout is still checked
            # against the model below; refusing them would strand every earlier export.
            logger.warning(
                "%s has no %s (exported before mmtok checksummed vocab.json): its contents are checked against "
                "the model, not its bytes; export again to add one",
                directory / CONFIG_FILE,
                key,
            )
            continue
        if file_sha256(directory / name) != config.get(key):
            raise ArtifactError(
                f"{directory / name} does not match the checksum {key} recorded at export in {CONFIG_FILE} "
                "(tampered or corrupt)"
            )


def _load_weights(model: torch.nn.Module, path: Path) -> None:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as error:
        raise ArtifactError(f"{path} is not a readable safetensors file: {error}") from None
    missing, unexpected, reshaped = state_differences(model.state_dict(), state)
    mismatched = [f"{name} {tuple(found)} vs {tuple(own)}" for name, found, own in reshaped]
    found = {"missing": missing, "unexpected": unexpected, "shape mismatch (file vs model)": mismatched}
    problems = [
        f"{label} {len(names)} ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
        for label, names in found.items()
        if names
    ]
    if problems:
        raise ArtifactError(f"{path} does not fit the model {CONFIG_FILE} describes: tensors {'; '.join(problems)}")
    model.load_state_dict(state, strict=True)


def state_differences(own: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> tuple[list, list, list]:
    """What keeps `found` from loading strictly into a model whose state dict is `own`: missing and
    unexpected names, and (name, shape found, shape the model has) for each reshaped tensor; sorted."""
    missing, unexpected = sorted(own.keys() - found.keys()), sorted(found.keys() - own.keys())
    reshaped = [
        (name, found[name].shape, own[name].shape)
        for name in sorted(own.keys() & found.keys())
        if found[name].shape != own[name].shape
    ]
    return missing, unexpected, reshaped


def check_vocab_matches_model(layout: VocabLayout, config: dict, model: Tokenizer, vocab_path: Path) -> None:
    """vocab.json, config.json and the model config.json builds agree on what the ids are."""
    config_path = vocab_path.with_name(CONFIG_FILE)
    if config["modality"] != model.modality:
        raise ArtifactError(
            f"{config_path}: modality is {config['modality']!r}, but its {model.family} model is {model.modality!r}"
        )
    sizes, axes = list(model.codebook_sizes), list(model.token_axes)
    checks = [
        ("modality", layout.modality, model.modality, f"modality {model.modality!r}"),
        ("num_codebooks", layout.num_codebooks, len(sizes), f"{len(sizes)} codebooks"),
        ("codebook_sizes", layout.codebook_sizes, sizes, f"codebook sizes {sizes}"),
        ("token_shape", len(layout.token_shape), len(axes), f"{len(axes)} token axes {axes}"),
    ]
    for field, stored, expected, model_has in checks:
        if stored != expected:
            shown = f"{layout.token_shape} ({stored} axes)" if field == "token_shape" else repr(stored)
            raise ArtifactError(
                f"{vocab_path}: {field} is {shown}, but the {model.family} model {CONFIG_FILE} builds has {model_has}"
            )


def _download(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.md"]))
    except Exception as error:  # no such local folder and no reachable hub: say both
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ArtifactError(
            f"{repo_id!r} is not a local folder and could not be fetched from a hub: {reason}"
        ) from None
