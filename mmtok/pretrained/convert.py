"""`mmtok convert MODEL OUT_DIR`: a pretrained model (a hub id or a local save_pretrained folder)
-> a normal mmtok artifact, and `mmtok.load_tokenizer("hf:ID")`, which does the same on the fly.

Only safetensors and JSON are read: a source with pickled weights alone is refused. A multimodal
LM (Chameleon, Janus, Emu3) holds its image tokenizer as `vqmodel`; only that part is read (and,
from a hub, only the weight shards that hold it are downloaded).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from mmtok.config import ConfigError, from_dict

# config.json's model_type (transformers) or _class_name (diffusers) -> (family, the key of the
# image tokenizer's config inside a multimodal model's config, or None for a standalone model)
SOURCES: dict[str, tuple[str, str | None]] = {
    "encodec": ("hf-encodec", None),
    "dac": ("hf-dac", None),
    "mimi": ("hf-mimi", None),
    "xcodec": ("hf-xcodec", None),
    "xcodec2": ("hf-xcodec2", None),
    "chameleon_vqgan": ("hf-chameleon", None),
    "chameleon": ("hf-chameleon", "vq_config"),
    "janus_vqgan": ("hf-janus", None),
    "janus": ("hf-janus", "vq_config"),
    "emu3_vqgan": ("hf-emu3", None),
    "emu3": ("hf-emu3", "vq_config"),
    "VQModel": ("diffusers-vqmodel", None),
}
SUBMODEL_PREFIX = "vqmodel."  # where multimodal LMs keep their image tokenizer's weights
PROCESSOR_FILE = "preprocessor_config.json"


def _identify(config: dict) -> tuple[str, str | None]:
    kind = config.get("_class_name") or config.get("model_type")
    if kind not in SOURCES:
        known = ", ".join(sorted(SOURCES))
        raise ConfigError(f"no mmtok adapter for a model of type {kind!r} (known: {known})")
    return SOURCES[kind]


# -- finding the files ---------------------------------------------------------------------------------------
def fetch(repo_id: str, revision: str | None = None, subfolder: str | None = None) -> tuple[Path, str]:
    """A hub snapshot holding what conversion reads from `subfolder` (e.g. a diffusers pipeline's
    "movq"): JSON, the model card, and the safetensors files (for a multimodal LM with sharded
    weights, only the shards holding its image tokenizer). Returns the (sub)folder and the commit."""
    from huggingface_hub import snapshot_download

    prefix = f"{subfolder.strip('/')}/" if subfolder else ""

    def snapshot(patterns: list[str]) -> Path:
        try:
            return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns))
        except Exception as error:  # not found, no network, offline mode, ...: say which model
            raise ConfigError(f"cannot fetch {repo_id!r} from a hub: {error}") from None

    card = ["README.md"]
    folder = snapshot([f"{prefix}*.json", *card]) / prefix
    weights = [f"{prefix}*.safetensors"]
    index = folder / "model.safetensors.index.json"
    config = json.loads((folder / "config.json").read_text())
    if index.is_file() and _identify(config)[1]:
        weight_map = json.loads(index.read_text())["weight_map"]
        weights = sorted({prefix + file for key, file in weight_map.items() if SUBMODEL_PREFIX in key})
    root = snapshot([f"{prefix}*.json", *card, *weights])
    return root / prefix, root.name  # snapshot folders are named by their commit


def _source_folder(model: str | Path, revision: str | None, subfolder: str | None) -> tuple[Path, str]:
    """(folder, provenance): a local folder as it is, a hub id through `fetch`."""
    path = Path(model)
    if path.is_dir():
        return (path / subfolder if subfolder else path), str((path / (subfolder or "")).resolve())
    if path.exists():
        raise ConfigError(f"{model} is a file; give a folder written by save_pretrained or a hub id")
    folder, commit = fetch(str(model), revision, subfolder)
    return folder, f"{model}@{commit}" + (f"/{subfolder}" if subfolder else "")


def _license(folder: Path) -> str:
    """The licence the source's model card states (its metadata header), or a warning to look."""
    card = folder / "README.md" if (folder / "README.md").is_file() else folder.parent / "README.md"
    if card.is_file():
        from huggingface_hub import ModelCard

        data = ModelCard.load(card).data
        if data.license:
            name = getattr(data, "license_name", None)
            return f"{data.license} ({name})" if name else str(data.license)
    return "not stated by the source: check it before use"


# -- loading the model ---------------------------------------------------------------------------------------
def load_model(folder: Path) -> tuple[str, torch.nn.Module]:
    """(family, the pretrained model in float32, eval mode) from a folder, safetensors only."""
    from mmtok.models.registry import tokenizer_class

    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ConfigError(f"{folder} holds no config.json: not a transformers or diffusers model folder")
    config = json.loads(config_path.read_text())
    family, sub_config = _identify(config)
    adapter = tokenizer_class(family)
    if not list(folder.glob("*.safetensors")):
        raise ConfigError(f"{folder} holds no .safetensors weights; mmtok never loads pickled (.bin, .pt) ones")
    if sub_config is None:
        from mmtok.pretrained.base import model_class

        cls = model_class(adapter.library, adapter.model_class_name)
        return family, cls.from_pretrained(folder, use_safetensors=True, dtype=torch.float32).eval()
    return family, _load_submodel(folder, adapter, config[sub_config])


def _load_submodel(folder: Path, adapter, model_config: dict) -> torch.nn.Module:
    """The image tokenizer inside a multimodal LM: its own class from its sub-config, and only the
    tensors under `...vqmodel.` of the LM's safetensors files."""
    from safetensors import safe_open

    from mmtok.pretrained.base import build_model

    model = build_model(adapter.library, adapter.model_class_name, model_config)
    state = {}
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():
                if SUBMODEL_PREFIX in key:
                    state[key.split(SUBMODEL_PREFIX, 1)[1]] = f.get_tensor(key).float()
    if not state:
        raise ConfigError(f"{folder}'s weights hold no image tokenizer ({SUBMODEL_PREFIX}* tensors)")
    model.load_state_dict(state, strict=True)
    return model.float().eval()


def _processor_options(folder: Path, adapter) -> dict:
    """What the source's preprocessor_config.json says about preparing inputs, as config fields."""
    path = folder / PROCESSOR_FILE
    if not path.is_file():
        return {}
    processor = json.loads(path.read_text())
    if adapter.family == "hf-xcodec2":
        return {"feature_extractor": processor}
    keys = ("rescale_factor", "image_mean", "image_std")
    if adapter.modality == "image" and all(k in processor for k in keys):
        return {k: processor[k] for k in keys}
    return {}


# -- converting ---------------------------------------------------------------------------------------------
def convert(
    model: str | Path,
    out_dir: str | Path,
    *,
    revision: str | None = None,
    subfolder: str | None = None,
    license: str | None = None,
    verify: bool = True,
    **options,
) -> Path:
    """Writes the artifact of `model` (a local folder or a hub id, the model in its `subfolder`
    if given) to `out_dir`. `options` are the
    family's config fields (bandwidth=, num_quantizers=, resize_to=, ...); unknown ones are an
    error naming them. With `verify`, the written artifact is loaded back and must give the
    source model's ids on a probe input."""
    from mmtok.models.registry import tokenizer_class
    from mmtok.pretrained.base import own_config

    folder, provenance = _source_folder(model, revision, subfolder)
    family, source_model = load_model(folder)
    adapter = tokenizer_class(family)
    model_config = own_config(source_model)
    fields = {
        "library": adapter.library,
        "model_class": adapter.model_class_name,
        "model_config": model_config,
        "source": provenance,
        **adapter.default_options(model_config),
        **_processor_options(folder, adapter),
        **options,
    }
    tokenizer = adapter(from_dict(adapter.config_class, fields, "model"), model=source_model)
    card = {
        "source": provenance,
        "license": license or _license(folder),
        "converted_from": f"{adapter.library} {type(source_model).__name__}",
    }
    out = tokenizer.save_pretrained(out_dir, card=card)
    if verify:
        _verify(tokenizer, out)
    return out


def _verify(tokenizer, out: Path) -> None:
    """The artifact, rebuilt from its files alone, gives the source model's ids on a probe input."""
    from mmtok.artifact import load_tokenizer

    frozen = load_tokenizer(out)
    generator = torch.Generator().manual_seed(0)
    spec = frozen.input_spec
    if frozen.modality == "audio":
        probe = torch.randn(1, spec.channels, spec.sample_rate, generator=generator) * 0.1
    else:
        side = tokenizer.fixed_size or 4 * tokenizer.factor
        probe = torch.rand(1, 3, side, side, generator=generator) * 2 - 1
    if not torch.equal(frozen.encode_tensor(probe).cpu(), tokenizer.encode(probe).cpu()):
        raise RuntimeError(f"{out} does not reproduce the source model's ids; please report this model")


# -- hf:ID in load_tokenizer ----------------------------------------------------------------------------------
def cache_root() -> Path:
    return Path(os.environ.get("MMTOK_CACHE", Path.home() / ".cache" / "mmtok")) / "converted"


def load_hub_model(spec: str, *, device="cpu"):
    """`hf:ORG/NAME[@REVISION]` -> its converted FrozenTokenizer, converted once per commit into
    the cache (MMTOK_CACHE, default ~/.cache/mmtok) and loaded from there afterwards."""
    from mmtok.artifact import CONFIG_FILE, load_tokenizer

    repo_id, _, revision = spec.removeprefix("hf:").partition("@")
    _, commit = fetch(repo_id, revision or None)
    target = cache_root() / f"{repo_id.replace('/', '--')}--{commit}"
    if not (target / CONFIG_FILE).is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        # Converted next to the target and renamed into place: a half-written cache is never read.
        scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=".converting-"))
        try:
            convert(repo_id, scratch / "artifact", revision=commit)
            (scratch / "artifact").rename(target)
        except OSError:
            if not (target / CONFIG_FILE).is_file():  # not another process winning the rename
                raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return load_tokenizer(target, device=device)
