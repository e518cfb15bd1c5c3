"""Frozen export, load_tokenizer, the vocab layout and the LLM client."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from train_helpers import TINY_IMAGE_MODEL, tiny_config, write_config, write_images

from mmtok import load_tokenizer
from mmtok.artifact import ArtifactError
from mmtok.models import build_tokenizer
from mmtok.train.config import load_run_config
from mmtok.train.export import export_run
from mmtok.train.trainer import Trainer
from mmtok.vocab import VocabLayout

TINY_IMAGE = {**TINY_IMAGE_MODEL, "quantizer": {"kind": "rvq", "options": {"codebook_size": 16, "num_codebooks": 2}}}


def images(count=3, size=20, seed=0):
    return (np.random.default_rng(seed).random((count, size, size, 3)) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    write_images(root / "data", 8)
    config = tiny_config(root / "run", root / "data", train={"max_steps": 3, "ema_decay": 0.9, "checkpoint_every": 3})
    trainer = Trainer(load_run_config(write_config(root / "c.yaml", config), []))
    trainer.fit()
    return root, trainer


@pytest.mark.parametrize("use_ema", [False, True])
def test_exported_ids_equal_the_training_models(trained_run, tmp_path, use_ema):
    root, trainer = trained_run
    out = export_run(root / "run", tmp_path / "tok", use_ema=use_ema)
    frozen = load_tokenizer(out)
    source = trainer.ema.model if use_ema else trainer.unwrapped
    source.eval()
    x = frozen.media_to_tensor(images())
    assert torch.equal(frozen.encode(images()), source.encode(x))
    assert not any(p.requires_grad for p in frozen.model.parameters()) and not frozen.model.training
    card = json.loads((out / "config.json").read_text())["card"]
    assert card["weights"] == ("EMA" if use_ema else "raw") and card["steps"] == 3


def test_round_trip_media_ids_llm_ids(tmp_path):
    torch.manual_seed(0)
    model = build_tokenizer(TINY_IMAGE).eval()
    model.quantizer.train()(torch.randn(256, 4))  # k-means init so codes are spread
    model.eval()
    frozen = load_tokenizer(model.save_pretrained(tmp_path / "tok"))
    ids = frozen.encode(images(2, size=24))
    assert ids.shape == (2, 12, 12, 2)
    decoded = frozen.decode_media(ids)
    assert decoded.shape == (2, 24, 24, 3) and decoded.dtype == np.uint8
    # Each example's ids survive the trip through its framed LLM ids.
    for example, llm_ids in zip(ids, frozen.to_llm_ids(images(2, size=24))):
        [back] = frozen.vocab.media_segments(llm_ids)
        assert torch.equal(back, example)
    # Paths work as media too.
    from PIL import Image

    Image.fromarray(images(1, size=24)[0]).save(tmp_path / "x.png")
    assert torch.equal(frozen.encode(str(tmp_path / "x.png")), frozen.encode(images(1, size=24)))


def test_load_refuses_pickles_and_tampered_weights(tmp_path):
    model = build_tokenizer(TINY_IMAGE)
    directory = model.save_pretrained(tmp_path / "tok")
    (directory / "extra.bin").write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(ArtifactError, match="pickle"):
        load_tokenizer(directory)
    (directory / "extra.bin").unlink()
    weights = directory / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="checksum"):
        load_tokenizer(directory)


def test_loading_needs_no_training_code(tmp_path):
    directory = build_tokenizer(TINY_IMAGE).save_pretrained(tmp_path / "tok")
    script = f"""
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "mmtok.train" or name.startswith("mmtok.train.") or name == "accelerate":
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
import numpy as np, mmtok
tok = mmtok.load_tokenizer({str(directory)!r})
ids = tok.encode(np.zeros((16, 16, 3), np.uint8))
assert "mmtok.train" not in sys.modules
print(tuple(ids.shape))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(1, 8, 8, 2)"


layouts = st.builds(
    dict,
    sizes=st.lists(st.integers(1, 40), min_size=1, max_size=3),
    offsets=st.sampled_from(["separate", "shared"]),
    flatten=st.sampled_from(["codebook_minor", "codebook_major"]),
    shape=st.sampled_from([[4], [None], [3, 5], [None, 4], [3, 5, "rows"]]),
    base=st.integers(0, 1000),
)


@settings(max_examples=150, deadline=None)
@given(spec=layouts, data=st.data())
def test_to_llm_ids_and_from_llm_ids_are_inverses(spec, data):
    rows = spec["shape"][-1] == "rows"
    shape = spec["shape"][:2] if rows else spec["shape"]
    layout = VocabLayout(
        "image",
        shape,
        spec["sizes"],
        base_offset=spec["base"],
        codebook_offsets=spec["offsets"],
        flatten="codebook_minor" if rows else spec["flatten"],
        row_markers=rows,
    )
    concrete = [data.draw(st.integers(1, 6)) if s is None else s for s in shape]
    ids = torch.stack([torch.randint(0, size, tuple(concrete)) for size in spec["sizes"]], dim=-1)
    llm = layout.to_llm_ids(ids)
    assert llm.min() >= layout.base_offset and llm.max() < layout.end_offset
    assert len(llm) == len(layout.segment_template(concrete))
    assert all(low <= int(v) < high for v, (low, high) in zip(llm, layout.segment_template(concrete)))
    text_before = (
        data.draw(st.lists(st.integers(0, max(0, layout.base_offset - 1)), max_size=5)) if layout.base_offset else []
    )
    text_after = [layout.end_offset + 7, layout.end_offset]
    parts = layout.from_llm_ids(text_before + llm.tolist() + text_after + llm.tolist())
    expected_len = (1 if text_before else 0) + 3
    assert len(parts) == expected_len
    media = [p for p in parts if torch.is_tensor(p)]
    assert len(media) == 2 and all(torch.equal(m, ids) for m in media)
    texts = [p for p in parts if not torch.is_tensor(p)]
    assert texts == ([text_before] if text_before else []) + [text_after]


def test_separate_offsets_keep_codebooks_apart():
    layout = VocabLayout("audio", [None], [1024, 1024], base_offset=50000)
    llm = layout.to_llm_ids(torch.tensor([[7, 7]]))
    assert llm[1] != llm[2] and llm.tolist() == [50000, 50002 + 7, 50002 + 1024 + 7, 50001]
    shared = VocabLayout("audio", [None], [1024, 1024], base_offset=50000, codebook_offsets="shared")
    assert shared.to_llm_ids(torch.tensor([[7, 7]])).tolist() == [50000, 50009, 50009, 50001]
    with pytest.raises(ValueError, match="out of range"):
        layout.to_llm_ids(torch.tensor([[1024, 0]]))


def test_a_real_llm_trains_on_interleaved_ids(tmp_path):
    """An exported image tokenizer and an exported audio codec in one GPT-2 vocabulary."""
    pytest.importorskip("transformers")
    from mmtok.llm_client import run_llm_client

    torch.manual_seed(0)
    image = {
        **TINY_IMAGE,
        "channel_multipliers": [1, 2, 2],
        "quantizer": {"kind": "fsq", "options": {"levels": [5, 5, 5, 5]}},
    }
    audio = {
        "family": "audio",
        "sample_rate": 8000,
        "base_channels": 4,
        "strides": [4, 5],
        "dilations": [1],
        "latent_dim": 8,
        "quantizer": {"kind": "rvq", "options": {"codebook_size": 16, "num_codebooks": 2}},
    }
    frozen = [
        load_tokenizer(build_tokenizer(config).save_pretrained(tmp_path / name))
        for name, config in (("image", image), ("audio", audio))
    ]
    pictures = list(images(6, size=16, seed=3))
    rng = np.random.default_rng(4)
    sounds = [np.sin(2 * np.pi * rng.uniform(100, 900) * np.arange(400) / 8000).astype(np.float32) for _ in range(6)]
    report = run_llm_client(frozen, [pictures, sounds], [f"item {i}" for i in range(6)], steps=80)
    assert report.last_loss < 0.5 * report.first_loss
    assert report.round_trips == 12
    assert report.sampled == [(1, 16, 16, 3), (1, 1, 400)]


def test_audio_codec_round_trips_through_export(tmp_path):
    torch.manual_seed(0)
    config = {
        "family": "audio",
        "sample_rate": 8000,
        "base_channels": 4,
        "strides": [4, 5],
        "dilations": [1],
        "latent_dim": 8,
        "quantizer": {"kind": "rvq", "options": {"codebook_size": 16, "num_codebooks": 3}},
    }
    model = build_tokenizer(config).eval()
    frozen = load_tokenizer(model.save_pretrained(tmp_path / "codec"))
    clip = np.sin(2 * np.pi * 440 * np.arange(1000) / 8000).astype(np.float32)
    ids = frozen.encode(clip)
    assert ids.shape == (1, 50, 3)
    # The codec sees the clip at the loudness it was trained at (-20 dBFS RMS; the sine is at -3).
    level = 20 * np.log10(np.sqrt(np.mean(clip**2)))
    gain = 10 ** ((-20 - level) / 20)
    assert torch.equal(ids, model.encode(torch.from_numpy(clip * gain)[None, None]))
    assert frozen.decode_media(ids).shape == (1, 1, 1000)
    [back] = frozen.vocab.media_segments(frozen.to_llm_ids(clip)[0])
    assert torch.equal(back, ids[0])
    import soundfile

    soundfile.write(tmp_path / "clip.wav", clip, 8000, subtype="FLOAT")  # exact samples
    assert torch.equal(frozen.encode(str(tmp_path / "clip.wav")), ids)


def test_export_and_validation_need_no_perceptual_weights(tmp_path):
    from mmtok.train.perceptual import PerceptualLoss, save_perceptual_weights

    write_images(tmp_path / "data", 6)
    weights = tmp_path / "vgg.safetensors"
    save_perceptual_weights(PerceptualLoss.from_random_init(seed=0), weights)
    loss = {"modality": {"perceptual_weight": 0.5, "perceptual_weights": str(weights)}}
    config = tiny_config(tmp_path / "run", tmp_path / "data", train={"max_steps": 2}, loss=loss)
    trainer = Trainer(load_run_config(write_config(tmp_path / "c.yaml", config), []))
    trainer.fit()
    weights.unlink()  # e.g. the run is exported on another machine

    run_config = load_run_config(tmp_path / "run" / "config.yaml", [])  # validating loads no weights
    with pytest.raises(FileNotFoundError, match="vgg.safetensors"):
        Trainer(run_config)  # training does need them
    result = subprocess.run(
        [sys.executable, "-m", "mmtok", "export", str(tmp_path / "run"), str(tmp_path / "tok")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    frozen = load_tokenizer(tmp_path / "tok")
    source = trainer.unwrapped.eval()
    assert torch.equal(frozen.encode(images(2, size=16)), source.encode(frozen.media_to_tensor(images(2, size=16))))
