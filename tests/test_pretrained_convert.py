"""`mmtok convert` and what takes its artifacts unchanged: load_tokenizer (also as hf:ID from a hub
cache), mmtok tokenize on folders of audio and images, mmtok inspect, and the LLM client."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import torch
import transformers as hf
from pretrained_models import build, chameleon_lm_config, save
from train_helpers import write_images

from mmtok import load_tokenizer
from mmtok.cli import main
from mmtok.data.image_io import ImageInputSpec
from mmtok.inspect import describe_artifact
from mmtok.pretrained import convert
from mmtok.shards import shard_files
from mmtok.tokenize import tokenize


def rows(output_dir) -> list[dict]:
    return sorted(
        pa.concat_tables([pq.read_table(f) for f in shard_files(output_dir)]).to_pylist(), key=lambda r: r["key"]
    )


def test_convert_cli_and_tokenize_a_folder_of_audio(tmp_path):
    save("hf-mimi", tmp_path / "mimi")
    assert main(["convert", str(tmp_path / "mimi"), str(tmp_path / "tok"), "num_quantizers=3"]) == 0
    frozen = load_tokenizer(tmp_path / "tok")
    assert frozen.family == "hf-mimi" and frozen.num_codebooks == 3 and frozen.input_spec.sample_rate == 24000

    clips = tmp_path / "clips"
    clips.mkdir()
    lengths = {"a.wav": (24000, 24000), "b.flac": (9000, 24000), "c.wav": (16000, 16000), "d.wav": (30, 24000)}
    for i, (name, (samples, rate)) in enumerate(lengths.items()):
        sf.write(clips / name, (np.sin(np.arange(samples) / (3 + i)) * 0.4).astype(np.float32), rate)
    manifest = tokenize(tmp_path / "tok", clips, tmp_path / "out", batch_size=4, num_workers=0, progress=False)
    expected = {"inputs": 4, "samples": 3, "tokens": (750 + 281 + 750) * 3, "errors": 1}
    assert expected.items() <= manifest["counts"].items()  # tokenize may count more (skipped, ...)
    assert manifest["tokenizer"]["family"] == "hf-mimi"
    errors = (tmp_path / "out" / "errors.jsonl").read_text()
    assert "d.wav" in errors and "shorter than one frame" in errors  # 30 samples: not one 32-sample frame
    model = build("hf-mimi")
    for row in rows(tmp_path / "out"):
        assert row["gain_db"] == 0.0 and row["sample_rate"] == 24000  # c.wav resampled from 16 kHz
        ids = frozen.vocab.unflatten_ids(torch.tensor(row["ids"]), row["token_shape"])
        assert torch.equal(ids, frozen.encode(str(clips / row["key"]))[0])
        wave = frozen.input_spec.prepare(str(clips / row["key"])).tensor
        whole = wave[..., : wave.shape[-1] // 32 * 32]
        assert torch.equal(ids, model.encode(whole, num_quantizers=3).audio_codes[0].T)


def test_tokenize_a_folder_of_images_with_a_converted_model(tmp_path):
    save("hf-chameleon", tmp_path / "src")
    out = convert(tmp_path / "src", tmp_path / "tok")
    frozen = load_tokenizer(out)
    assert frozen.config["input"]["resize_to"] == 32 and frozen.config["input"]["crop_size"] == 32
    images = tmp_path / "images"
    write_images(images, 5, size=24)
    write_images(images / "big", 3, size=80, seed=1)
    manifest = tokenize(out, images, tmp_path / "shards", batch_size=3, shard_size=4, num_workers=0, progress=False)
    assert {"inputs": 8, "samples": 8, "tokens": 8 * 256, "errors": 0}.items() <= manifest["counts"].items()
    assert manifest["num_shards"] == 2
    model = build("hf-chameleon")
    spec = ImageInputSpec(crop_size=32, multiple_of=2, resize_to=32)
    for row in rows(tmp_path / "shards"):
        assert row["token_shape"] == [16, 16, 1] and (row["height"], row["width"]) == (32, 32)
        pixels = spec.prepare(str(images / row["key"])).tensor  # the model's 512 px rule, at 32 px
        assert row["ids"] == model.encode(pixels).image_tokens.tolist()
    text = describe_artifact(out)
    assert "hf-chameleon" in text and "32x32" in text and "ChameleonVQVAE" in text


def test_image_tokenizer_inside_a_multimodal_lm(tmp_path):
    vq = build("hf-chameleon")
    vocabulary = {"<image>": 1, **{f"IMGIMG{chr(65 + i // 26)}{chr(65 + i % 26)}Z": 10 + i for i in range(64)}}
    config = chameleon_lm_config(vq, vocabulary)
    lm = hf.ChameleonForConditionalGeneration(config)
    lm.model.vqmodel.load_state_dict(vq.state_dict())
    lm.save_pretrained(tmp_path / "lm")
    (tmp_path / "lm" / "README.md").write_text("---\nlicense: cc-by-nc-4.0\n---\n# a test model\n")
    frozen = load_tokenizer(convert(tmp_path / "lm", tmp_path / "tok"))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.equal(frozen.encode_tensor(x)[..., 0].flatten(), lm.model.vqmodel.encode(x).image_tokens)
    card = (tmp_path / "tok" / "README.md").read_text()
    assert "license: cc-by-nc-4.0" in card and "source: " in card and "ChameleonVQVAE" in card
    # Nothing of the LM but its image tokenizer was kept.
    assert frozen.model.model.state_dict().keys() == vq.state_dict().keys()


def test_refusals(tmp_path):
    encodec = hf.EncodecModel(hf.EncodecConfig(normalize=True, chunk_length_s=1.0, overlap=0.01))
    encodec.save_pretrained(tmp_path / "encodec48")
    with pytest.raises(ValueError, match="float scale per chunk"):
        convert(tmp_path / "encodec48", tmp_path / "out")
    (tmp_path / "pickled").mkdir()
    (tmp_path / "pickled" / "config.json").write_text(json.dumps({"model_type": "dac"}))
    torch.save({}, tmp_path / "pickled" / "pytorch_model.bin")
    with pytest.raises(ValueError, match="never loads pickled"):
        convert(tmp_path / "pickled", tmp_path / "out")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match="no mmtok adapter for a model of type 'bert'"):
        convert(tmp_path / "other", tmp_path / "out")


def test_hf_id_converts_once_from_the_hub_cache(tmp_path, monkeypatch):
    """A hub snapshot laid out as huggingface_hub caches it, read with the hub switched off: the
    hf:ID path (snapshot_download included) runs as it would online, minus the network."""
    import huggingface_hub.constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--acme--tiny-dac"
    save("hf-dac", repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("MMTOK_CACHE", str(tmp_path / "mmtok"))

    frozen = load_tokenizer("hf:acme/tiny-dac")
    assert frozen.family == "hf-dac" and frozen.config["card"]["source"] == f"acme/tiny-dac@{commit}"
    assert str(frozen.path).startswith(str(tmp_path / "mmtok"))
    written = (frozen.path / "model.safetensors").stat().st_mtime_ns
    again = load_tokenizer("hf:acme/tiny-dac")
    assert again.path == frozen.path and (again.path / "model.safetensors").stat().st_mtime_ns == written  # reused
    x = torch.linspace(-0.5, 0.5, 800).view(1, 1, 800)
    assert torch.equal(again.encode_tensor(x)[0], build("hf-dac").encode(x).audio_codes[0].T)
    with pytest.raises(ValueError, match="cannot fetch .acme/missing. from a hub"):
        load_tokenizer("hf:acme/missing")

    # A diffusers pipeline keeps its VQ model in a subfolder; the licence is the repository's.
    pipeline = tmp_path / "hub" / "models--acme--pipeline"
    save("diffusers-vqmodel", pipeline / "snapshots" / commit / "movq")
    (pipeline / "snapshots" / commit / "README.md").write_text("---\nlicense: apache-2.0\n---\n")
    (pipeline / "refs").mkdir()
    (pipeline / "refs" / "main").write_text(commit)
    movq = load_tokenizer(convert("acme/pipeline", tmp_path / "movq", subfolder="movq"))
    assert movq.config["card"]["source"] == f"acme/pipeline@{commit}/movq"
    assert movq.config["card"]["license"] == "apache-2.0" and movq.family == "diffusers-vqmodel"


def test_llm_client_takes_converted_tokenizers(tmp_path):
    from mmtok.llm_client import run_llm_client

    frozen = [
        load_tokenizer(convert(save(f, tmp_path / f), tmp_path / f"{f}-tok")) for f in ("diffusers-vqmodel", "hf-mimi")
    ]
    pictures = [np.full((16, 16, 3), 40 * i, dtype=np.uint8) for i in range(4)]
    sounds = torch.rand(4, 1, 32 * 10) - 0.5
    report = run_llm_client(frozen, [pictures, sounds], [f"item {i}" for i in range(4)], steps=15)
    assert report.round_trips == 8 and report.vocab_size > 400 + 64 + 4 * 32
    assert report.sampled == [(1, 16, 16, 3), (1, 1, 320)]
