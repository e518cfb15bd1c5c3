"""An artifact checks itself on load: vocab.json against config.json and the model, both covered by
checksums, and files readable under the user's umask (issue 19)."""

import hashlib
import json
import logging
import os
import shutil
import stat

import pytest
import torch
from safetensors.torch import load_file, save_file
from train_helpers import TINY_IMAGE_MODEL

from mmtok import load_tokenizer
from mmtok.artifact import ArtifactError
from mmtok.models import build_tokenizer
from mmtok.vocab import VocabLayout

# 4 codebooks of 64 codes, as in the report.
TINY_RVQ_IMAGE = {
    **TINY_IMAGE_MODEL,
    "quantizer": {"kind": "rvq", "options": {"codebook_size": 64, "num_codebooks": 4}},
}
ARTIFACT_FILES = ("config.json", "model.safetensors", "vocab.json", "README.md")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    return build_tokenizer(TINY_RVQ_IMAGE).save_pretrained(tmp_path_factory.mktemp("saved") / "tok")


@pytest.fixture
def artifact(saved, tmp_path):
    return shutil.copytree(saved, tmp_path / "tok")


def read_json(path):
    return json.loads(path.read_text())


def write_vocab(directory, data, *, update_checksum=True):
    """vocab.json as someone edited it; with its checksum in config.json updated to match, so what
    is checked is the content (a hand-made or regenerated artifact), not the bytes."""
    (directory / "vocab.json").write_text(json.dumps(data))
    if update_checksum:
        config = read_json(directory / "config.json")
        config["vocab_sha256"] = hashlib.sha256((directory / "vocab.json").read_bytes()).hexdigest()
        (directory / "config.json").write_text(json.dumps(config))


def write_layout(directory, **changes):
    """A self-consistent vocab.json (derived fields recomputed) that disagrees with the model."""
    layout = VocabLayout.from_json(read_json(directory / "vocab.json"))
    for name, value in changes.items():
        setattr(layout, name, value)
    write_vocab(directory, layout.to_json())


def refusal(directory) -> str:
    with pytest.raises(ArtifactError) as info:
        load_tokenizer(directory)
    return str(info.value)


def test_saved_artifact_records_the_vocab_checksum_and_loads(artifact):
    config = read_json(artifact / "config.json")
    assert config["vocab_sha256"] == hashlib.sha256((artifact / "vocab.json").read_bytes()).hexdigest()
    frozen = load_tokenizer(artifact)
    assert frozen.vocab.codebook_sizes == [64] * 4


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"codebook_sizes": [100] * 4}, ["codebook_sizes is [100, 100, 100, 100]", "codebook sizes [64, 64, 64, 64]"]),
        ({"codebook_sizes": [64] * 3}, ["num_codebooks is 3", "has 4 codebooks"]),
        ({"modality": "audio"}, ["modality is 'audio'", "has modality 'image'"]),
        (
            {"token_shape": [None], "row_markers": False},
            ["token_shape is [None] (1 axes)", "has 2 token axes ['h', 'w']"],
        ),
    ],
    ids=["codebook-sizes", "num-codebooks", "modality", "token-axes"],
)
def test_vocab_that_disagrees_with_the_model_is_refused(artifact, changes, expected):
    write_layout(artifact, **changes)
    message = refusal(artifact)
    assert str(artifact / "vocab.json") in message
    for part in expected:
        assert part in message


def stored(artifact):
    return read_json(artifact / "vocab.json")


# The tiny layout: specials 0 (start), 1 (end), 2 (row marker); codebooks at 3, 67, 131, 195; 259 ids.
SPECIALS = {"<|image_start|>": 0, "<|image_end|>": 1, "<|image_row|>": 2}


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("num_codebooks", 3, ["num_codebooks is 3", "lists 4 codebooks"]),
        ("offsets", [3, 50, 131, 195], ["offsets", "codebook 0", "[3, 67)", "overlap codebook 1", "[50, 114)"]),
        ("offsets", [3, 67, 131, 250], ["offsets", "codebook 3", "[250, 314)", "outside", "[0, 259)"]),
        ("offsets", [195, 131, 67, 3], ["offsets is [195, 131, 67, 3]", "[3, 67, 131, 195]"]),
        ("special_tokens", {**SPECIALS, "<|image_end|>": 0}, ["special_tokens share ids"]),
        ("special_tokens", {**SPECIALS, "<|image_end|>": 5}, ["<|image_end|> is id 5", "codebook 0", "[3, 67)"]),
        ("special_tokens", {**SPECIALS, "<|image_row|>": 300}, ["special_tokens is", "the layout gives"]),
        ("size", 300, ["size is 300", "259"]),
    ],
    ids=[
        "num-codebooks",
        "overlap",
        "outside",
        "reordered",
        "special-shared",
        "special-in-codes",
        "special-moved",
        "size",
    ],
)
def test_inconsistent_stored_fields_are_refused(artifact, field, value, expected):
    data = stored(artifact)
    data[field] = value
    write_vocab(artifact, data)
    message = refusal(artifact)
    assert str(artifact / "vocab.json") in message
    for part in expected:
        assert part in message


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("codebook_sizes", "64x4", "codebook_sizes is '64x4', expected a list of ints"),
        ("token_shape", None, "token_shape is None"),
        ("codebook_offsets", "interleaved", "codebook_offsets must be one of"),
    ],
)
def test_malformed_vocab_fields_are_refused(artifact, field, value, expected):
    data = stored(artifact)
    data[field] = value
    write_vocab(artifact, data)
    message = refusal(artifact)
    assert str(artifact / "vocab.json") in message and expected in message


def test_vocab_edited_after_export_fails_its_checksum(artifact):
    data = stored(artifact)
    data["base_offset"] = 10  # a consistent layout, but not the exported one
    write_vocab(artifact, VocabLayout.from_json(data).to_json(), update_checksum=False)
    message = refusal(artifact)
    assert "vocab_sha256" in message and str(artifact / "vocab.json") in message
    assert load_tokenizer(artifact, verify=False).vocab.base_offset == 10


def test_artifact_from_before_the_vocab_checksum_loads_with_a_warning(artifact, caplog):
    config = read_json(artifact / "config.json")
    del config["vocab_sha256"]
    (artifact / "config.json").write_text(json.dumps(config))
    with caplog.at_level(logging.WARNING, logger="mmtok.artifact"):
        frozen = load_tokenizer(artifact)
    assert frozen.vocab.num_codebooks == 4
    assert any("vocab_sha256" in record.getMessage() for record in caplog.records)
    # Its contents are still checked.
    write_layout(artifact, codebook_sizes=[100] * 4)
    config = read_json(artifact / "config.json")
    del config["vocab_sha256"]
    (artifact / "config.json").write_text(json.dumps(config))
    assert "codebook_sizes" in refusal(artifact)


def test_config_that_disagrees_with_its_model_or_lacks_keys_is_refused(artifact):
    config = read_json(artifact / "config.json")
    (artifact / "config.json").write_text(json.dumps({**config, "modality": "audio"}))
    message = refusal(artifact)
    assert str(artifact / "config.json") in message and "'audio'" in message and "'image'" in message
    (artifact / "config.json").write_text(json.dumps({k: v for k, v in config.items() if k != "family"}))
    message = refusal(artifact)
    assert str(artifact / "config.json") in message and "no 'family'" in message
    (artifact / "config.json").write_text("{not json")
    assert "not readable JSON" in refusal(artifact)


def test_weights_missing_a_tensor_are_refused_by_name(artifact):
    state = load_file(str(artifact / "model.safetensors"))
    dropped = sorted(state)[0]
    del state[dropped]
    save_file(state, str(artifact / "model.safetensors"))
    with pytest.raises(ArtifactError, match=f"missing 1 \\({dropped}\\)"):
        load_tokenizer(artifact, verify=False)


def test_local_paths_that_do_not_exist_never_reach_the_hub(artifact, tmp_path, monkeypatch):
    import huggingface_hub

    def no_hub(*args, **kwargs):
        raise AssertionError("a local path was sent to the hub")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_hub)
    monkeypatch.chdir(tmp_path)
    for typo in (str(tmp_path / "tokk"), "./tokk", "tok/sub/x", "tok/typo", "~/no-such-mmtok-tokenizer"):
        assert "does not exist" in refusal(typo)
    assert "is a file, not a tokenizer folder" in refusal(artifact / "config.json")


@pytest.mark.parametrize("umask, expected", [(0o022, 0o644), (0o077, 0o600)])
def test_files_follow_the_umask(saved, tmp_path, umask, expected):
    model = build_tokenizer(TINY_RVQ_IMAGE)
    directory = tmp_path / "tok"
    directory.mkdir()
    (directory / "model.safetensors").write_bytes(b"")
    os.chmod(directory / "model.safetensors", 0o640)  # an overwritten file must not keep its old mode
    previous = os.umask(umask)
    try:
        model.save_pretrained(directory)
    finally:
        os.umask(previous)
    modes = {name: stat.S_IMODE((directory / name).stat().st_mode) for name in ARTIFACT_FILES}
    assert modes == dict.fromkeys(ARTIFACT_FILES, expected)
    assert sorted(p.name for p in directory.iterdir()) == sorted(ARTIFACT_FILES), "the mode probe is left behind"
    assert load_tokenizer(directory).num_codebooks == 4
