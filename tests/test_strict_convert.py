"""`mmtok convert` is strict: a checkpoint must fill the model exactly, no pickle is ever read, the
artifact is checked against the source loaded again on its own, and a local path that is not
there is never sent to a hub."""

import importlib
import json

import huggingface_hub
import pytest
import torch
import transformers as hf
from pretrained_models import build, chameleon_lm_config, save
from safetensors.torch import load_file, save_file

from mmtok import load_tokenizer
from mmtok.config import ConfigError
from mmtok.pretrained import convert
from mmtok.pretrained.convert import ConversionError
from mmtok.storage import looks_like_path

convert_module = importlib.import_module("mmtok.pretrained.convert")  # the package's `convert` is the function

WEIGHTS = {"hf-encodec": "model.safetensors", "diffusers-vqmodel": "diffusion_pytorch_model.safetensors"}
# A codebook (EnCodec's first residual one; the VQ-GAN's only one) and a weight beside it.
CODEBOOK = {"hf-encodec": "quantizer.layers.0.codebook.embed", "diffusers-vqmodel": "quantize.embedding.weight"}


def edit_checkpoint(folder, family: str, edit) -> None:
    path = folder / WEIGHTS[family]
    state = load_file(path)
    edit(state)
    save_file(state, path, metadata={"format": "pt"})


@pytest.fixture
def no_pickle(monkeypatch):
    """Any torch.load during the test fails it: nothing may unpickle, whatever the folder holds."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"torch.load was called on {args[:1]}")

    monkeypatch.setattr(torch, "load", refuse)


@pytest.fixture
def no_hub(monkeypatch):
    """Any hub download during the test fails it."""
    calls = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *args, **kwargs: calls.append(args) or 1 / 0)
    return calls


@pytest.mark.parametrize("family", sorted(WEIGHTS))
def test_a_legitimate_checkpoint_converts_and_matches_its_model(tmp_path, family, no_pickle):
    out = convert(save(family, tmp_path / "source"), tmp_path / "tok")
    model = build(family)
    x = torch.rand(1, 1, 16 * 20) - 0.5 if family == "hf-encodec" else torch.rand(1, 3, 16, 16) * 2 - 1
    ids = load_tokenizer(out).encode_tensor(x)
    if family == "hf-encodec":
        assert torch.equal(ids[0], model.encode(x, bandwidth=12.0).audio_codes[0, 0].T)
    else:
        assert torch.equal(ids[0, ..., 0].flatten(), model.quantize(model.encode(x).latents)[2][2])


@pytest.mark.parametrize("family", sorted(WEIGHTS))
def test_a_checkpoint_with_a_missing_tensor_is_refused(tmp_path, family):
    folder = save(family, tmp_path / "source")
    edit_checkpoint(folder, family, lambda state: state.pop(CODEBOOK[family]))
    with pytest.raises(ConversionError, match=f"1 missing \\({CODEBOOK[family]}\\)"):
        convert(folder, tmp_path / "tok")
    assert not (tmp_path / "tok").exists()  # refused before anything was written


@pytest.mark.parametrize("family", sorted(WEIGHTS))
def test_unexpected_and_mismatched_tensors_are_refused(tmp_path, family):
    folder = save(family, tmp_path / "extra")
    edit_checkpoint(folder, family, lambda state: state.update({"stray.weight": torch.zeros(3)}))
    with pytest.raises(ConversionError, match=r"1 unexpected \(stray.weight\)"):
        convert(folder, tmp_path / "tok")
    folder = save(family, tmp_path / "reshaped")
    codebook = CODEBOOK[family]
    edit_checkpoint(folder, family, lambda state: state.update({codebook: state[codebook][:-1].clone()}))
    with pytest.raises(ConversionError, match=f"1 of another shape \\({codebook} \\(63, "):
        convert(folder, tmp_path / "tok")


def test_an_image_tokenizer_inside_a_multimodal_lm_must_be_complete(tmp_path):
    vq = build("hf-chameleon")
    config = chameleon_lm_config(vq, {"<image>": 1})
    lm = hf.ChameleonForConditionalGeneration(config)
    lm.save_pretrained(tmp_path / "lm")
    state = load_file(tmp_path / "lm" / "model.safetensors")
    dropped = sorted(key for key in state if "vqmodel.quantize" in key)
    for key in dropped:
        del state[key]
    save_file(state, tmp_path / "lm" / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ConversionError, match=r"1 missing \(quantize.embedding.weight\)"):
        convert(tmp_path / "lm", tmp_path / "tok")


@pytest.mark.parametrize("index_name", ["model.safetensors.index.json", "pytorch_model.bin.index.json"])
def test_an_index_that_points_at_a_pickle_is_refused_and_nothing_unpickles(tmp_path, index_name, no_pickle):
    folder = save("hf-encodec", tmp_path / "decoy")
    state = load_file(folder / "model.safetensors")
    # A .safetensors decoy passes a look for safetensors files, while the index sends the library
    # to the pickle (transformers torch.loads it, measured before this check).
    (folder / "model.safetensors").rename(folder / "decoy.safetensors")
    torch.save(state, folder / "pytorch_model.bin")
    index = {"metadata": {}, "weight_map": {key: "pytorch_model.bin" for key in state}}
    (folder / index_name).write_text(json.dumps(index))
    with pytest.raises(ConversionError, match=r"names weight files \['pytorch_model.bin'\].*never loads pickled"):
        convert(folder, tmp_path / "tok")
    (folder / index_name).write_text(json.dumps({"weight_map": {"a": "../elsewhere/model.safetensors"}}))
    with pytest.raises(ConversionError, match="only .safetensors files beside the index"):
        convert(folder, tmp_path / "tok")


def test_a_pickle_beside_the_safetensors_is_never_read(tmp_path, no_pickle):
    folder = save("hf-dac", tmp_path / "both")
    (folder / "pytorch_model.bin").write_bytes(b"not to be unpickled")  # as many hub repos hold both
    frozen = load_tokenizer(convert(folder, tmp_path / "tok"))
    x = torch.rand(1, 1, 8 * 30) - 0.5
    assert torch.equal(frozen.encode_tensor(x)[0], build("hf-dac").encode(x).audio_codes[0].T)


@pytest.mark.parametrize("part, message", [("quantizer", "does not reproduce the ids"), ("decoder", "does not decode")])
def test_the_artifact_is_checked_against_the_source_loaded_on_its_own(tmp_path, monkeypatch, part, message):
    """A conversion whose own model object went wrong (here: one tensor changed after loading) is
    caught, because the check loads the source folder again instead of reusing that object."""
    real_load_model = convert_module.load_model
    loads = []

    def load_then_spoil_the_first(folder):
        family, model = real_load_model(folder)
        if not loads:
            weights = next(p for name, p in model.named_parameters() if name.startswith(part))
            weights.data.add_(torch.randn_like(weights) * weights.std() * 3)
        loads.append(folder)
        return family, model

    monkeypatch.setattr(convert_module, "load_model", load_then_spoil_the_first)
    with pytest.raises(RuntimeError, match=message):
        convert(save("hf-dac", tmp_path / "source"), tmp_path / "tok")
    assert len(loads) == 2  # converted from one load, checked against another
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source"]  # no artifact (or scratch) left behind


def test_which_arguments_are_local_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    for text in ["./typo", "../typo", "/no/such/model", "~/models/x", "data/typo", "a/b/c", "my model", "C:\\m"]:
        assert looks_like_path(text), text
    for text in ["facebook/encodec_24khz", "gpt2", "acme/tiny-dac.v2"]:  # hub ids (no folder facebook/ here)
        assert not looks_like_path(text), text


def test_a_local_path_that_is_not_there_is_never_sent_to_the_hub(tmp_path, monkeypatch, no_hub):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no such folder: ./typo; a local model is a folder"):
        convert("./typo", tmp_path / "out")
    with pytest.raises(
        FileNotFoundError, match=r"no such folder: models/encodec \(models exists, encodec in it does not\)"
    ):
        convert("models/encodec", tmp_path / "out")
    with pytest.raises(FileNotFoundError, match=r"no such folder: ./models/typo"):
        load_tokenizer("hf:./models/typo")
    save("hf-dac", tmp_path / "models" / "dac")
    with pytest.raises(FileNotFoundError, match=r"no such folder: .*models/dac/movq"):
        convert("models/dac", tmp_path / "out", subfolder="movq")
    with pytest.raises(ConfigError, match=r"is a local folder: convert it with `mmtok convert models/dac OUT_DIR`"):
        load_tokenizer("hf:models/dac")
    assert no_hub == []


def test_a_hub_id_that_cannot_be_fetched_says_both_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ConversionError) as refused:
        convert("acme/absent", tmp_path / "out")
    text = str(refused.value)
    assert text.startswith("'acme/absent' is not a local folder, and mmtok cannot fetch 'acme/absent' from a hub: ")
    assert "\n" not in text and "HF_HUB_OFFLINE" in text  # the reason, from huggingface_hub
