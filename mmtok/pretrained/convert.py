"""`mmtok convert MODEL OUT_DIR`: a pretrained model (a hub id or a local save_pretrained folder)
-> a normal mmtok artifact, and `mmtok.load_tokenizer("hf:ID")`, which does the same on the fly.

Only safetensors and JSON are read: a source with pickled weights alone is refused, and so is a
weight index (`*.index.json`) that names anything but `.safetensors` files; the library loads
from a view of the folder that holds nothing else, so no pickle can be reached. Loading is strict:
a checkpoint with missing, unexpected or shape-mismatched tensors is refused (the libraries would
fill the gap with fresh random weights and only log it). After writing, the artifact is checked
against the source model loaded again, on its own, from the source folder: the same ids on a
probe input, and the same decoding. A multimodal LM (Chameleon, Janus, Emu3) holds its image
tokenizer as `vqmodel`; only that part is read (and, from a hub, only the weight shards that hold
it are downloaded).

Local folder or hub id (`looks_like_path`): an argument that names an existing folder is that
folder. One that does not exist is sent to a hub only if it reads as a hub id, ORG/NAME or NAME;
one that reads as a path (it starts with ./, ../, / or ~, holds a backslash or more than one
slash, or its first component is a folder here, as in data/typo) is "no such folder".
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from mmtok.artifact import ArtifactError, state_differences
from mmtok.config import ConfigError, from_dict
from mmtok.storage import looks_like_path, missing_folder_error

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
SHOWN_TENSORS = 5  # names listed per kind of problem in a refusal


class ConversionError(ArtifactError):
    """A source model mmtok will not convert: weights that do not fill it exactly, an index that
    points at pickles, a hub that cannot be reached, a conversion that does not reproduce it."""


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
        except Exception as error:  # not found, no network, offline mode, ...: say which model, in one line
            reason = " ".join(f"{type(error).__name__}: {error}".split())
            raise ConversionError(
                f"{repo_id!r} is not a local folder, and mmtok cannot fetch {repo_id!r} from a hub: {reason[:300]}"
            ) from None

    card = ["README.md"]
    folder = snapshot([f"{prefix}*.json", *card]) / prefix
    weights = [f"{prefix}*.safetensors"]
    index = folder / "model.safetensors.index.json"
    if not (folder / "config.json").is_file():
        raise ConversionError(f"{repo_id}{'/' + subfolder if subfolder else ''} on the hub holds no config.json")
    config = json.loads((folder / "config.json").read_text())
    if index.is_file() and _identify(config)[1]:
        weight_map = json.loads(index.read_text())["weight_map"]
        weights = sorted({prefix + file for key, file in weight_map.items() if SUBMODEL_PREFIX in key})
    root = snapshot([f"{prefix}*.json", *card, *weights])
    return root / prefix, root.name  # snapshot folders are named by their commit


def _source_folder(model: str | Path, revision: str | None, subfolder: str | None) -> tuple[Path, str]:
    """(folder, provenance): a local folder as it is, a hub id through `fetch`."""
    path = Path(model).expanduser()
    if path.is_dir():
        folder = path / subfolder if subfolder else path
        if not folder.is_dir():
            raise missing_folder_error(str(folder))
        return folder, str(folder.resolve())
    if path.exists():
        raise ConfigError(f"{model} is a file; give a folder written by save_pretrained or a hub id")
    if isinstance(model, Path) or looks_like_path(str(model)):
        raise missing_folder_error(str(model))
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
def _checked_index(path: Path) -> dict:
    """A weight index's weight_map, refused unless every file it names is a .safetensors file
    beside it (an index naming pytorch_model.bin would make the library torch.load it)."""
    try:
        weight_map = json.loads(path.read_text()).get("weight_map", {})
    except (ValueError, AttributeError) as error:
        raise ConversionError(f"{path} is not a weight index: {error}") from None
    if not isinstance(weight_map, dict):
        raise ConversionError(f"{path}: weight_map is not a mapping of tensor names to files")
    files = sorted({str(name) for name in weight_map.values()})
    unsafe = [name for name in files if not name.endswith(".safetensors") or Path(name).name != name]
    if unsafe:
        raise ConversionError(
            f"{path} names weight files {unsafe[:SHOWN_TENSORS]}: mmtok reads only .safetensors files beside "
            "the index and never loads pickled (.bin, .pt) ones"
        )
    absent = [name for name in files if not (path.parent / name).is_file()]
    if absent:
        raise ConversionError(f"{path} names weight files that are not there: {absent[:SHOWN_TENSORS]}")
    return weight_map


def _check_indexes(folder: Path) -> None:
    for index in sorted(folder.glob("*.index.json")):
        _checked_index(index)


@contextlib.contextmanager
def _safetensors_view(folder: Path):
    """A temporary folder of links to `folder`'s JSON and .safetensors files only, for the library
    to load from: whatever else the folder holds (a pytorch_model.bin, a checkpoint), the loader
    cannot reach it. Every weight index in the folder is checked first (`_checked_index`)."""
    _check_indexes(folder)
    with tempfile.TemporaryDirectory(prefix="mmtok-source-") as view:
        for path in folder.iterdir():
            if path.is_file() and path.suffix in (".json", ".safetensors"):
                (Path(view) / path.name).symlink_to(path.resolve())
        yield Path(view)


def _refuse_unclean_load(info: dict, folder: Path) -> None:
    """Raises ConversionError when a checkpoint did not fill the model exactly (`info` as transformers'
    and diffusers' `output_loading_info` give it)."""

    def listed(items: list[str]) -> str:
        return ", ".join(items[:SHOWN_TENSORS]) + (", ..." if len(items) > SHOWN_TENSORS else "")

    problems = []
    for kind, label in (("missing_keys", "missing"), ("unexpected_keys", "unexpected")):
        names = sorted(info.get(kind) or [])
        if names:
            problems.append(f"{len(names)} {label} ({listed(names)})")
    mismatched = sorted(info.get("mismatched_keys") or [])
    if mismatched:
        shapes = [f"{key} {tuple(ckpt)} in the file, {tuple(own)} in the model" for key, ckpt, own in mismatched]
        problems.append(f"{len(mismatched)} of another shape ({listed(shapes)})")
    errors = [" ".join(str(message).split()) for message in info.get("error_msgs") or []]
    if errors:
        problems.append(f"loading errors ({'; '.join(errors[:2])})")
    if problems:
        raise ConversionError(
            f"{folder}'s checkpoint does not match its model's config, tensors: {'; '.join(problems)}. "
            "mmtok converts only checkpoints that fill the model exactly (the library would fill the gaps "
            "with random weights)"
        )


def load_model(folder: Path) -> tuple[str, torch.nn.Module]:
    """(family, the pretrained model in float32, eval mode) from a folder, safetensors only, every
    tensor of the model from the checkpoint and every tensor of the checkpoint in the model."""
    from mmtok.models.registry import tokenizer_class

    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ConversionError(f"{folder} holds no config.json: not a transformers or diffusers model folder")
    config = json.loads(config_path.read_text())
    family, sub_config = _identify(config)
    adapter = tokenizer_class(family)
    if not list(folder.glob("*.safetensors")):
        raise ConversionError(f"{folder} holds no .safetensors weights; mmtok never loads pickled (.bin, .pt) ones")
    if sub_config is not None:
        return family, _load_submodel(folder, adapter, config[sub_config])
    from mmtok.pretrained.base import model_class

    cls = model_class(adapter.library, adapter.model_class_name)
    options = {
        "use_safetensors": True,
        "local_files_only": True,
        "dtype": torch.float32,
        "output_loading_info": True,
        # Shape mismatches reported in the loading info (the refusal lists them) rather than raised.
        "ignore_mismatched_sizes": True,
    }
    if adapter.library == "diffusers":
        options["low_cpu_mem_usage"] = False  # diffusers reports mismatched shapes only on this path
    with _safetensors_view(folder) as view:
        try:
            model, info = cls.from_pretrained(view, **options)
        except OSError as error:  # e.g. safetensors under names the library does not look for
            reason = " ".join(str(error).replace(str(view), str(folder)).split())
            raise ConversionError(f"{adapter.library} cannot load the model in {folder}: {reason}") from None
    _refuse_unclean_load(info, folder)
    return family, model.float().eval()


def _load_submodel(folder: Path, adapter, model_config: dict) -> torch.nn.Module:
    """The image tokenizer inside a multimodal LM: its own class from its sub-config, and only the
    tensors under `...vqmodel.` of the LM's safetensors files (read with safetensors, after every
    weight index in the folder was checked to name only safetensors files)."""
    from safetensors import safe_open

    from mmtok.pretrained.base import build_model

    model = build_model(adapter.library, adapter.model_class_name, model_config)
    state = {}
    _check_indexes(folder)
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():
                if SUBMODEL_PREFIX in key:
                    state[key.split(SUBMODEL_PREFIX, 1)[1]] = f.get_tensor(key).float()
    if not state:
        raise ConversionError(f"{folder}'s weights hold no image tokenizer ({SUBMODEL_PREFIX}* tensors)")
    missing, unexpected, reshaped = state_differences(model.state_dict(), state)
    _refuse_unclean_load({"missing_keys": missing, "unexpected_keys": unexpected, "mismatched_keys": reshaped}, folder)
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
    keys = ("rescale_factor", "image_mean", "image_std")  # an image processor's, where the config takes them
    fields = {f.name for f in dataclasses.fields(adapter.config_class)}
    if all(k in processor and k in fields for k in keys):
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
    error naming them. With `verify`, the written artifact is loaded back and must give the ids
    and the decoding of the source model loaded again from its folder, on a probe input; only
    then is it moved into `out_dir`."""
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
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and moved in once checked: an artifact that failed its check is never left behind.
    scratch = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.converting-"))
    try:
        written = tokenizer.save_pretrained(scratch / "artifact", card=card)
        del tokenizer, source_model  # the check loads the source again, on its own
        if verify:
            _verify(written, folder)
        out.mkdir(exist_ok=True)
        for path in written.iterdir():
            path.replace(out / path.name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return out


def _verify(out: Path, folder: Path) -> None:
    """The artifact, rebuilt from its files alone, gives the ids (and the decoding) of the source
    model loaded again from `folder` by its library, independently of the model the conversion
    read, on a fixed probe input."""
    from mmtok.artifact import load_tokenizer
    from mmtok.models.registry import tokenizer_class

    frozen = load_tokenizer(out)
    family, reference_model = load_model(folder)
    reference = tokenizer_class(family)(frozen.model.config, model=reference_model)
    generator = torch.Generator().manual_seed(0)
    probe = reference.probe_input(generator)
    ids = reference.encode(probe)
    if not torch.equal(frozen.encode_tensor(probe).cpu(), ids):
        raise RuntimeError(f"{out} does not reproduce the ids of the model in {folder}; please report this model")
    try:
        expected = reference.decode(ids)
    except NotImplementedError:  # an encoder-only model (Chameleon's): nothing to compare
        return
    if not torch.allclose(frozen.decode(ids).cpu(), expected, rtol=1e-4, atol=1e-5):
        raise RuntimeError(f"{out} does not decode as the model in {folder} does; please report this model")


# -- hf:ID in load_tokenizer ----------------------------------------------------------------------------------
def cache_root() -> Path:
    return Path(os.environ.get("MMTOK_CACHE", Path.home() / ".cache" / "mmtok")) / "converted"


def load_hub_model(spec: str, *, device="cpu"):
    """`hf:ORG/NAME[@REVISION]` -> its converted FrozenTokenizer, converted once per commit into
    the cache (MMTOK_CACHE, default ~/.cache/mmtok) and loaded from there afterwards."""
    from mmtok.artifact import CONFIG_FILE, load_tokenizer

    repo_id, _, revision = spec.removeprefix("hf:").partition("@")
    if Path(repo_id).expanduser().is_dir():
        raise ConfigError(
            f"{spec}: hf: takes a hub id; {repo_id} is a local folder: convert it with "
            f"`mmtok convert {repo_id} OUT_DIR` and load OUT_DIR"
        )
    if looks_like_path(repo_id):
        raise missing_folder_error(repo_id)
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
