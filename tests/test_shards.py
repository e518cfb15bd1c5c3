"""mmtok tokenize and ShardDataset: bad files, kill and restart, two processes, audio of many
lengths, --llm-ids, other input kinds, reading the shards back (datasets, packing)."""

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader
from train_helpers import TINY_AUDIO_MODEL as TINY_AUDIO
from train_helpers import TINY_IMAGE_MODEL as TINY_IMAGE
from train_helpers import write_images

from mmtok import load_tokenizer
from mmtok.models import build_tokenizer
from mmtok.shards import ERRORS_FILE, ShardDataset, read_manifest, shard_files
from mmtok.tokenize import tokenize

# Every compared run encodes with one thread, so the arithmetic (and the ids) are the same.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
BAD_FILES = {  # name -> bytes; the names sort between the good images
    "img_010_truncated.png": None,  # half of a real PNG, filled in below
    "img_020_text.jpg": b"this is text, not a jpeg\n" * 4,
    "img_030_empty.png": b"",
    "img_035_random.webp": bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8)),
    "sub/img_005_page.jpeg": b"<html><body>404 not found</body></html>",
}
TINY = "sub/img_015_tiny.png"  # a real 1x1 PNG: upscaled to the training crop (16 px), as training does
SHARD, BATCH = 3, 2  # many small shards, so a kill lands mid-way


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    torch.manual_seed(0)
    return build_tokenizer(TINY_IMAGE).save_pretrained(tmp_path_factory.mktemp("tok") / "tok")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """61 good images (40 of 24 px, 20 of 32 px in a subfolder, one of 1 px) and 5 bad files."""
    root = tmp_path_factory.mktemp("images")
    good = write_images(root, 40, size=24) + write_images(root / "sub", 20, size=32, seed=1)
    png = good[0].read_bytes()
    tiny = io.BytesIO()
    Image.new("RGB", (1, 1)).save(tiny, format="PNG")
    for name, data in BAD_FILES.items():
        (root / name).write_bytes(png[: len(png) // 2] if data is None else data)
    (root / TINY).write_bytes(tiny.getvalue())
    return root


def run_tokenize(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mmtok", "tokenize", *map(str, args)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
        **kwargs,
    )


def rows(output_dir) -> list[dict]:
    """Every row of every shard, sorted by key; the shards' own order must not matter to callers."""
    table = pa.concat_tables([pq.read_table(f) for f in shard_files(output_dir)])
    return sorted(table.to_pylist(), key=lambda r: r["key"])


@pytest.fixture(scope="module")
def reference(tok_dir, images, tmp_path_factory):
    """One uninterrupted single-process run, in a subprocess like the runs compared with it."""
    out = tmp_path_factory.mktemp("reference") / "out"
    result = run_tokenize(tok_dir, images, out, "--shard-size", SHARD, "--batch-size", BATCH, "--num-workers", 1)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_bad_files_become_error_records_and_the_rest_rows(reference, tok_dir, images):
    manifest = read_manifest(reference)
    assert manifest["counts"] == {
        "inputs": 66,
        "samples": 61,
        "tokens": 40 * 144 + 20 * 256 + 64,
        "errors": 5,
        "skipped": 0,
    }
    assert manifest["run"]["world_size"] == 1 and manifest["ids_dtype"] == "uint16"
    assert manifest["tokenizer"]["weights_sha256"] == load_tokenizer(tok_dir).config["weights_sha256"]
    errors = [json.loads(line) for line in (reference / ERRORS_FILE).read_text().splitlines()]
    assert [e["key"] for e in errors] == sorted(BAD_FILES)
    assert all(e["reason"] and e["source"].endswith(e["key"]) for e in errors)
    assert "cannot read an image" in errors[0]["reason"]

    table = rows(reference)
    assert len(table) == 61 and len({r["key"] for r in table}) == 61
    tiny = next(r for r in table if r["key"] == TINY)
    assert (tiny["height"], tiny["source_height"], tiny["token_shape"]) == (16, 1, [8, 8, 1])
    assert not list(reference.glob("*.tmp"))
    first = table[0]
    assert first["key"] == "img_000.png" and (first["height"], first["width"], first["channels"]) == (24, 24, 3)
    assert first["token_shape"] == [12, 12, 1] and first["num_bytes"] == (images / "img_000.png").stat().st_size
    sub = next(r for r in table if r["key"] == "sub/img_000.png")
    assert sub["token_shape"] == [16, 16, 1] and sub["height"] == 32
    # img_000 and img_001 form the first batch of shard 0: encoding that batch directly gives their ids.
    frozen = load_tokenizer(tok_dir)
    expected = frozen.encode([str(images / "img_000.png"), str(images / "img_001.png")])
    for row, ids in zip(table[:2], expected):
        assert torch.equal(frozen.vocab.unflatten_ids(torch.tensor(row["ids"]), row["token_shape"]), ids)


def test_killed_job_restarted_gives_the_uninterrupted_rows(reference, tok_dir, images, tmp_path):
    out = tmp_path / "out"
    args = [
        sys.executable,
        "-m",
        "mmtok",
        "tokenize",
        tok_dir,
        images,
        out,
        "--shard-size",
        SHARD,
        "--batch-size",
        BATCH,
        "--num-workers",
        1,
    ]
    job = subprocess.Popen(list(map(str, args)), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    deadline = time.time() + 120
    while not shard_files(out) and time.time() < deadline and job.poll() is None:
        time.sleep(0.005)
    job.send_signal(signal.SIGKILL)
    job.wait()
    done = shard_files(out)
    assert 0 < len(done) < 22, f"the kill did not land mid-way ({len(done)} of 22 shards written)"
    assert not (out / "manifest.json").exists()
    # A partial file from a kill at the worst moment is overwritten, never read.
    (out / "shard-000021.parquet.tmp").write_bytes(b"half a parquet file")
    kept = {f.name: f.stat().st_mtime_ns for f in done}

    result = run_tokenize(tok_dir, images, out, "--shard-size", SHARD, "--batch-size", BATCH, "--num-workers", 1)
    assert result.returncode == 0, result.stderr[-3000:]
    assert rows(out) == rows(reference)
    assert len({r["key"] for r in rows(out)}) == 61
    assert (out / ERRORS_FILE).read_text() == (reference / ERRORS_FILE).read_text()
    assert {f.name: f.stat().st_mtime_ns for f in shard_files(out) if f.name in kept} == kept  # skipped, not redone
    assert not list(out.glob("*.tmp")) and read_manifest(out)["run"]["shards"] == 22 - len(kept)

    # The same command with other settings would mix two plans in one directory: refused.
    other = run_tokenize(tok_dir, images, out, "--shard-size", 5)
    assert other.returncode != 0 and "shard_size" in other.stderr


def test_ctrl_c_finishes_the_shard_in_progress(tok_dir, images, tmp_path):
    out = tmp_path / "out"
    args = [
        sys.executable,
        "-m",
        "mmtok",
        "tokenize",
        tok_dir,
        images,
        out,
        "--shard-size",
        SHARD,
        "--batch-size",
        BATCH,
        "--num-workers",
        1,
    ]
    job = subprocess.Popen(list(map(str, args)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.time() + 120
    while not shard_files(out) and time.time() < deadline and job.poll() is None:
        time.sleep(0.005)
    job.send_signal(signal.SIGINT)
    _, stderr = job.communicate(timeout=120)
    assert job.returncode == 130, stderr[-3000:]
    assert "run the same command again to resume" in stderr
    assert 0 < len(shard_files(out)) < 22 and not list(out.glob("*.tmp"))
    assert rows(out)  # every shard file is a whole parquet file


def test_two_processes_write_the_same_rows_as_one(reference, tok_dir, images, tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--multi_gpu",
            "--num_processes",
            "2",
            "--num_machines",
            "1",
            "--mixed_precision",
            "no",
            "--dynamo_backend",
            "no",
            "-m",
            "mmtok",
            "tokenize",
            str(tok_dir),
            str(images),
            str(out),
            "--shard-size",
            str(SHARD),
            "--batch-size",
            str(BATCH),
            "--num-workers",
            "0",
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = read_manifest(out)
    assert manifest["run"]["world_size"] == 2
    writers = {json.loads(pq.read_schema(f).metadata[b"mmtok"])["process"] for f in shard_files(out)}
    assert writers == {0, 1}
    assert rows(out) == rows(reference)
    assert (out / ERRORS_FILE).read_text() == (reference / ERRORS_FILE).read_text()


@pytest.fixture(scope="module")
def in_process_run(tok_dir, images, tmp_path_factory):
    out = tmp_path_factory.mktemp("in_process") / "out"
    tokenize(tok_dir, images, out, shard_size=16, batch_size=8, num_workers=0, limit=32, progress=False)
    return out


def test_llm_ids_decode_back_to_the_codebook_ids(in_process_run, tok_dir, images, tmp_path):
    tokenize(
        tok_dir,
        images,
        tmp_path / "llm",
        shard_size=16,
        batch_size=8,
        num_workers=0,
        limit=32,
        llm_ids=True,
        progress=False,
    )
    vocab = load_tokenizer(tok_dir).vocab
    llm, raw = rows(tmp_path / "llm"), rows(in_process_run)
    assert [r["key"] for r in llm] == [r["key"] for r in raw] and len(raw) == 30  # 32 inputs, two of them bad
    assert read_manifest(tmp_path / "llm")["llm_ids"] is True
    for a, b in zip(llm, raw):
        (segment,) = vocab.from_llm_ids(a["ids"])
        assert torch.equal(segment, vocab.unflatten_ids(torch.tensor(b["ids"]), b["token_shape"]))
        assert a["token_shape"] == b["token_shape"]


def test_datasets_reads_the_shards(in_process_run, tmp_path):
    datasets = pytest.importorskip("datasets")
    loaded = datasets.load_dataset(
        "parquet",
        data_files=[str(f) for f in shard_files(in_process_run)],
        split="train",
        cache_dir=str(tmp_path / "hf"),
    )
    assert loaded.num_rows == 30
    assert loaded.features["ids"].feature.dtype == "uint16"
    assert sorted(loaded["key"]) == [r["key"] for r in rows(in_process_run)]


def test_shard_dataset_yields_llm_ids_and_packs_them(in_process_run, tok_dir):
    vocab = load_tokenizer(tok_dir).vocab
    table = sorted(rows(in_process_run), key=lambda r: r["index"])  # shard order = input order
    expected = [vocab.to_llm_ids(vocab.unflatten_ids(torch.tensor(r["ids"]), r["token_shape"])) for r in table]

    samples = list(ShardDataset(in_process_run))
    assert [s["key"] for s in samples] == [r["key"] for r in table]
    assert all(torch.equal(s["ids"], e) for s, e in zip(samples, expected))
    raw = next(iter(ShardDataset(in_process_run, llm_ids=False)))
    assert torch.equal(raw["ids"], torch.tensor(table[0]["ids"], dtype=torch.long))
    shifted = next(iter(ShardDataset(in_process_run, vocab=vocab.with_base_offset(50_000))))
    assert torch.equal(shifted["ids"], expected[0] + 50_000)

    blocks = list(ShardDataset(in_process_run, pack_to=100))
    stream = torch.cat(expected)
    assert all(b.shape == (100,) and b.dtype == torch.long for b in blocks)
    assert len(blocks) == len(stream) // 100 and torch.equal(torch.cat(blocks), stream[: len(blocks) * 100])

    # Two DataLoader workers split the shards: every sample once.
    loader = DataLoader(ShardDataset(in_process_run), batch_size=None, num_workers=2)
    assert sorted(s["key"] for s in loader) == sorted(r["key"] for r in table)


def test_tar_parquet_and_glob_inputs_give_the_folder_rows(tok_dir, images, tmp_path):
    names = [f"img_{i:03d}.png" for i in range(4)]
    with tarfile.open(tmp_path / "part.tar", "w") as tar:
        for name in names:
            tar.add(images / name, arcname=f"sample/{name}")
            info = tarfile.TarInfo(f"sample/{name[:-4]}.json")  # webdataset side files are not media
            info.size = 2
            tar.addfile(info, io.BytesIO(b"{}"))
    blobs = [(images / n).read_bytes() for n in names]
    pq.write_table(
        pa.table({"image": [{"bytes": b, "path": n} for b, n in zip(blobs, names)]}),
        tmp_path / "hf.parquet",
        row_group_size=3,
    )
    pq.write_table(pa.table({"pixels": blobs, "caption": names}), tmp_path / "plain.parquet", row_group_size=2)

    def ids(source, **options):
        out = tmp_path / f"out{len(list(tmp_path.glob('out*')))}"
        tokenize(tok_dir, source, out, shard_size=4, batch_size=4, num_workers=0, progress=False, **options)
        table = sorted(rows(out), key=lambda r: r["index"])
        return [r["key"] for r in table], [r["ids"] for r in table]

    keys, expected = ids(images, limit=4)
    assert keys == names
    assert ids(tmp_path / "part.tar") == ([f"part.tar/sample/{n}" for n in names], expected)
    assert ids(tmp_path / "hf.parquet") == ([f"hf.parquet/{i}" for i in range(4)], expected)
    assert ids(tmp_path / "plain.parquet", column="pixels")[1] == expected
    assert ids(str(images / "img_00[0-3].png")) == (names, expected)


def test_audio_files_of_different_lengths(tmp_path):
    sf = pytest.importorskip("soundfile")
    torch.manual_seed(0)
    tok = build_tokenizer(TINY_AUDIO).save_pretrained(tmp_path / "tok")
    clips = tmp_path / "clips"
    clips.mkdir()
    rates = {
        "a.wav": (16000, 16000),
        "b.wav": (24000, 16000),
        "c.wav": (16000, 16000),
        "d.wav": (8000, 22050),
        "e.flac": (24000, 16000),
        "f.wav": (4000, 16000),
    }  # name -> (samples, sample rate)
    for i, (name, (samples, rate)) in enumerate(rates.items()):
        sf.write(clips / name, np.sin(np.arange(samples) / (5 + i)).astype(np.float32) * 0.5, rate)
    whole = (clips / "a.wav").read_bytes()
    (clips / "g_truncated.wav").write_bytes(whole[: len(whole) // 2])
    (clips / "h_text.wav").write_text("not audio")

    manifest = tokenize(tok, clips, tmp_path / "out", batch_size=8, num_workers=1, progress=False)
    assert manifest["counts"]["samples"] == 6 and manifest["counts"]["errors"] == 2
    assert manifest["ids_dtype"] == "uint16"
    table = rows(tmp_path / "out")
    resampled = {"d.wav": 5805}  # 8000 samples at 22.05 kHz, resampled to 16 kHz in the worker
    for row in table:
        samples = resampled.get(row["key"], rates[row["key"]][0])
        assert (row["num_samples"], row["sample_rate"], row["channels"]) == (samples, 16000, 1)
        assert row["duration"] == pytest.approx(samples / 16000)
        assert row["token_shape"] == [samples // 8, 2]
    # The causal codec encodes clips of different lengths in one padded batch; each clip's ids are
    # those of its own length's batch (padding never reaches an earlier frame).
    frozen = load_tokenizer(tok)
    for length in {r["num_samples"] for r in table}:
        group = [r for r in table if r["num_samples"] == length]
        expected = frozen.encode([str(clips / r["key"]) for r in group])
        assert [r["ids"] for r in group] == [ids.flatten().tolist() for ids in expected]
    errors = [json.loads(line) for line in (tmp_path / "out" / ERRORS_FILE).read_text().splitlines()]
    assert [e["key"] for e in errors] == ["g_truncated.wav", "h_text.wav"]
    assert "truncated" in errors[0]["reason"]
