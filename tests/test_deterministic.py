"""--deterministic: ids that do not depend on how inputs were grouped into batches (batch size,
shard size, processes), in bf16 too, because every encode call has one shape: a batch of
batch_size, each input padded to the bucket of its own length. And the encode policy, written
where the ids are."""

import json
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from test_batch_invariance import FAMILIES, example
from test_shards import ENV, rows

from mmtok.config import load_yaml
from mmtok.models import build_tokenizer
from mmtok.shards import read_manifest, shard_files
from mmtok.tokenize import tokenize
from mmtok.tokenizer import bucket_length

# Clip lengths (samples at 24 kHz) that fall into different buckets and share batches in any order.
LENGTHS = [9000, 24000, 13000, 30000, 9600, 17000, 24100, 11000, 28000, 15000, 20000]


@pytest.fixture(scope="module")
def speech_codec(tmp_path_factory):
    """The residual speech codec's recipe at its real size (random weights): at this size the
    padded length changes its bf16 and fp32 arithmetic, so groupings give different codes."""
    torch.manual_seed(0)
    model = build_tokenizer(load_yaml("configs/audio_rvq.yaml")["model"])
    return model.save_pretrained(tmp_path_factory.mktemp("codec") / "tok")


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    sf = pytest.importorskip("soundfile")
    root = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    for i, length in enumerate(LENGTHS):
        t = np.arange(length) / 24000
        wave = np.sin(2 * np.pi * (120 + 40 * i) * t) * 0.3 + rng.normal(0, 0.05, length)
        sf.write(root / f"clip_{i:02d}.wav", wave.astype(np.float32), 24000)
    return root


def job(tok, clips, out, precision="bf16", **options) -> list[dict]:
    tokenize(tok, clips, out, num_workers=0, progress=False, precision=precision, **options)
    return rows(out)


def test_batch_size_shard_size_and_processes_do_not_change_deterministic_ids(speech_codec, clips, tmp_path):
    reference = job(speech_codec, clips, tmp_path / "b1", batch_size=1, deterministic=True)
    for name, options in {
        "b3": {"batch_size": 3, "deterministic": True},
        "b32": {"batch_size": 32, "deterministic": True},
        "b32-shards4": {"batch_size": 32, "shard_size": 4, "deterministic": True},
    }.items():
        assert job(speech_codec, clips, tmp_path / name, **options) == reference, name
    launched = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines",
         "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "mmtok", "tokenize", str(speech_codec),
         str(clips), str(tmp_path / "two"), "--batch-size", "3", "--shard-size", "2", "--num-workers", "0",
         "--precision", "bf16", "--deterministic"],
        capture_output=True, text=True, env=ENV, timeout=600,
    )  # fmt: skip
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert read_manifest(tmp_path / "two")["run"]["world_size"] == 2
    assert rows(tmp_path / "two") == reference
    # Without it the same inputs give other codes in other batches (here in fp32, where this codec's
    # CPU arithmetic follows the padded length): the test's inputs can tell.
    alone = job(speech_codec, clips, tmp_path / "default1", "fp32", batch_size=1)
    together = job(speech_codec, clips, tmp_path / "default32", "fp32", batch_size=32)
    assert [r["ids"] for r in alone] != [r["ids"] for r in together]
    fixed = job(speech_codec, clips, tmp_path / "fp32-b32", "fp32", batch_size=32, deterministic=True)
    assert job(speech_codec, clips, tmp_path / "fp32-b1", "fp32", batch_size=1, deterministic=True) == fixed
    assert [r["token_shape"] for r in alone] == [r["token_shape"] for r in reference]


def test_the_encode_policy_is_in_the_manifest_and_every_shard(speech_codec, clips, tmp_path):
    job(speech_codec, clips, tmp_path / "out", batch_size=4, shard_size=5, deterministic=True)
    manifest = read_manifest(tmp_path / "out")
    policy = manifest["encode_policy"]
    assert policy["deterministic"] is True and policy["precision"] == "bf16"
    assert policy["batch_size"] == 4 and policy["encode_batch"] == 16  # the default encode shape
    assert policy["long_media"] == {"chunk_seconds": 10.0}
    assert policy["versions"]["torch"] == torch.__version__
    for shard in shard_files(tmp_path / "out"):
        assert json.loads(pq.read_schema(shard).metadata[b"mmtok"])["encode_policy"] == policy
    # Another encode shape would give other codes: a resume that asks for one is refused.
    with pytest.raises(ValueError, match="deterministic"):
        tokenize(speech_codec, clips, tmp_path / "out", batch_size=4, deterministic=8, precision="bf16")


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_fixed_batch_ids_do_not_depend_on_neighbours_position_or_count(name):
    torch.manual_seed(0)
    tok = build_tokenizer(FAMILIES[name]).eval()
    sizes = [16] if name == "image1d" else [16, 24, 32, 16, 40, 16, 24]
    inputs = [example(name, size, seed) for seed, size in enumerate(sizes)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        together = tok.encode_many(inputs, fixed_batch=4)
        alone = [tok.encode_many([x], fixed_batch=4)[0] for x in inputs]
        reversed_ = tok.encode_many(inputs[::-1], fixed_batch=4)[::-1]
    for i, ids in enumerate(together):
        assert torch.equal(ids, alone[i]) and torch.equal(ids, reversed_[i]), f"{name}: input {i}"
        assert ids.shape == tok.encode_many([inputs[i]])[0].shape


def test_buckets_depend_on_the_length_alone_and_waste_at_most_an_eighth():
    lengths = range(1, 70_000, 37)
    assert all(n <= bucket_length(n) <= n * 1.125 for n in lengths)
    assert bucket_length(24_000) == 24_576 and bucket_length(32_768) == 32_768
    assert len({bucket_length(n) for n in range(20_000, 30_000)}) == 6  # few shapes: batches fill up
