"""`mmtok tokenize` on what real corpora hold: clips too short for a frame, encoder failures, links
(dangling, to folders, in loops), other files, a manifest pointing outside its folder, two jobs on
one folder, inputs replaced between runs, and a residual tokenizer's first codebooks."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import torch
from train_helpers import TINY_AUDIO_MODEL, TINY_IMAGE_MODEL, write_images

from mmtok import load_tokenizer
from mmtok.artifact import FrozenTokenizer
from mmtok.job_lock import LOCK_FILE, STALE_SECONDS, FolderLock, FolderLocked
from mmtok.models import build_tokenizer
from mmtok.shards import ERRORS_FILE, ShardDataset, read_manifest, shard_files
from mmtok.storage import Folder
from mmtok.tokenize import tokenize

RUN = {"num_workers": 0, "progress": False}


def rows(output_dir) -> dict[str, dict]:
    return {r["key"]: r for f in shard_files(output_dir) for r in pq.read_table(f).to_pylist()}


def errors(output_dir) -> dict[str, str]:
    lines = (output_dir / ERRORS_FILE).read_text().splitlines()
    return {e["key"]: e["reason"] for e in map(json.loads, lines)}


@pytest.fixture(scope="module")
def image_tok(tmp_path_factory):
    torch.manual_seed(0)
    return build_tokenizer(TINY_IMAGE_MODEL).save_pretrained(tmp_path_factory.mktemp("tok") / "image")


@pytest.fixture(scope="module")
def audio_tok(tmp_path_factory):
    torch.manual_seed(0)
    return build_tokenizer(TINY_AUDIO_MODEL).save_pretrained(tmp_path_factory.mktemp("tok") / "audio")


# -- one bad item never stops the job, and gets the same error in any batch ---------------------------
@pytest.mark.parametrize("batch_size", [1, 32])
def test_a_clip_shorter_than_a_frame_is_an_error_in_any_batch(audio_tok, tmp_path, batch_size):
    clips = tmp_path / "clips"
    clips.mkdir()
    rate = TINY_AUDIO_MODEL["sample_rate"]
    sf.write(clips / "a_click.wav", np.full(5, 0.5, np.float32), rate)  # 5 samples < hop 8
    sf.write(clips / "b_second.wav", np.sin(np.arange(rate) / 7).astype(np.float32) * 0.5, rate)
    out = tmp_path / "out"
    manifest = tokenize(audio_tok, clips, out, batch_size=batch_size, **RUN)
    assert manifest["counts"]["samples"] == 1 and manifest["counts"]["errors"] == 1
    reason = errors(out)["a_click.wav"]
    assert "shorter than one frame" in reason and "at least 8 samples" in reason
    expected = load_tokenizer(audio_tok).encode(str(clips / "b_second.wav"))[0]
    assert rows(out)["b_second.wav"]["ids"] == expected.flatten().tolist()


def test_an_encoder_failure_of_any_kind_lists_only_the_bad_item(image_tok, tmp_path, monkeypatch):
    folder = tmp_path / "images"
    write_images(folder, 4, size=24)
    write_images(folder / "wide", 1, size=32)  # encoded in the same batch as the others (batch_size 8)
    reference = tmp_path / "reference"
    tokenize(image_tok, folder, reference, batch_size=1, **RUN)

    real = FrozenTokenizer.encode_many

    def broken_on_32_px(self, inputs, **options):
        if any(x.shape[-1] == 32 for x in inputs):
            raise RuntimeError("a kernel failed on this size")  # not a ValueError: any exception counts
        return real(self, inputs, **options)

    monkeypatch.setattr(FrozenTokenizer, "encode_many", broken_on_32_px)
    out = tmp_path / "out"
    manifest = tokenize(image_tok, folder, out, batch_size=8, **RUN)
    assert manifest["counts"]["samples"] == 4 and manifest["counts"]["errors"] == 1
    assert errors(out) == {"wide/img_000.png": "encode: RuntimeError: a kernel failed on this size"}
    good = rows(out)
    assert {k: r["ids"] for k, r in good.items()} == {k: r["ids"] for k, r in rows(reference).items() if k in good}


# -- nothing skipped in silence -----------------------------------------------------------------------
def test_links_are_followed_and_every_file_is_a_row_an_error_or_counted(image_tok, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    write_images(elsewhere, 3, size=24, seed=3)
    folder = tmp_path / "dataset"
    write_images(folder, 2, size=24)
    os.symlink(elsewhere, folder / "linked")  # a symlinked subfolder: its files are inputs
    os.symlink(folder / "img_000.png", folder / "alias.png")  # a link to a file: an input of its own
    os.symlink(folder / "gone.png", folder / "dangling.png")  # a link to nothing: an error line
    os.symlink(folder, folder / "linked" / "loop")  # a loop: walked once, counted
    (folder / "notes.txt").write_text("captions")  # another kind of file: counted
    (folder / "linked" / "meta.json").write_text("{}")

    out = tmp_path / "out"
    manifest = tokenize(image_tok, folder, out, **RUN)
    assert sorted(rows(out)) == [
        "alias.png",
        "img_000.png",
        "img_001.png",
        "linked/img_000.png",
        "linked/img_001.png",
        "linked/img_002.png",
    ]
    assert rows(out)["alias.png"]["ids"] == rows(out)["img_000.png"]["ids"]
    assert list(errors(out)) == ["dangling.png"] and "dangling symbolic link" in errors(out)["dangling.png"]
    passed = manifest["skipped"]
    assert passed["other extension (.txt)"]["count"] == 1 and passed["other extension (.json)"]["count"] == 1
    loops = passed["folder already listed (a symbolic link loop or a second link to it)"]
    assert loops == {"count": 1, "examples": [str(folder / "linked" / "loop")]}
    assert manifest["counts"] == {"inputs": 7, "samples": 6, "tokens": 6 * 144, "errors": 1, "skipped": 3}


# -- the output folder ----------------------------------------------------------------------------------
def test_a_manifest_naming_a_file_outside_its_folder_is_refused(image_tok, tmp_path):
    write_images(tmp_path / "images", 2, size=24)
    out = tmp_path / "out"
    tokenize(image_tok, tmp_path / "images", out, **RUN)
    (tmp_path / "outside.parquet").write_bytes((out / "shard-000000.parquet").read_bytes())
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["shards"] = ["../outside.parquet"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"names shard '\.\./outside\.parquet'"):
        ShardDataset(out)
    with pytest.raises(ValueError, match="not a shard file"):
        read_manifest(out)


def test_a_second_job_on_a_held_folder_is_refused(image_tok, tmp_path):
    write_images(tmp_path / "images", 2, size=24)
    out = tmp_path / "out"
    with FolderLock(Folder(out)):  # a live job of this process holds the folder
        with pytest.raises(FolderLocked, match="in use by another tokenize job.*--break-lock"):
            tokenize(image_tok, tmp_path / "images", out, **RUN)
        assert not (out / "manifest.json").exists()
    manifest = tokenize(image_tok, tmp_path / "images", out, **RUN)  # given back: the job runs
    assert manifest["counts"]["samples"] == 2 and not (out / LOCK_FILE).exists()


def _plant_lock(folder, **fields):
    record = {"token": "x", "host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
    record.update({"heartbeat": time.time(), **fields})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LOCK_FILE).write_text(json.dumps(record))


def test_stale_locks_are_taken_over_and_live_ones_only_with_break_lock(image_tok, tmp_path):
    write_images(tmp_path / "images", 2, size=24)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _plant_lock(tmp_path / "a", pid=int(dead.stdout))  # a killed job on this machine
    assert tokenize(image_tok, tmp_path / "images", tmp_path / "a", **RUN)["counts"]["samples"] == 2
    _plant_lock(tmp_path / "b", host="another-node", heartbeat=time.time() - STALE_SECONDS - 60)
    assert tokenize(image_tok, tmp_path / "images", tmp_path / "b", **RUN)["counts"]["samples"] == 2

    _plant_lock(tmp_path / "c", host="another-node")  # heartbeat fresh: maybe alive
    with pytest.raises(FolderLocked, match="process .* on another-node"):
        tokenize(image_tok, tmp_path / "images", tmp_path / "c", **RUN)
    assert tokenize(image_tok, tmp_path / "images", tmp_path / "c", break_lock=True, **RUN)["counts"]["samples"] == 2


def test_a_job_started_while_another_runs_is_refused(image_tok, tmp_path):
    write_images(tmp_path / "images", 6, size=24)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "mmtok", "tokenize", str(image_tok), str(tmp_path / "images"), str(out)]
    first = subprocess.Popen([*command, "--num-workers", "0"], stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while not (out / LOCK_FILE).exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    first.send_signal(signal.SIGSTOP)  # the first job holds the folder, mid-way, for as long as the test needs
    try:
        second = subprocess.run([*command, "--num-workers", "0"], capture_output=True, text=True, env=env, timeout=300)
    finally:
        first.send_signal(signal.SIGCONT)
    assert second.returncode == 1 and "is in use by another tokenize job" in second.stderr
    assert first.wait(timeout=300) == 0, first.stderr.read()[-2000:]
    assert read_manifest(out)["counts"]["samples"] == 6 and not (out / LOCK_FILE).exists()


def test_concurrent_writers_of_one_file_never_collide(tmp_path):
    folder = Folder(tmp_path)
    failures = []

    def write(text):
        try:
            for _ in range(20):
                folder.write_text_atomic("job.json", text)
        except Exception as error:  # a shared temporary name is renamed away under the other writer
            failures.append(error)

    threads = [threading.Thread(target=write, args=(f"writer {i}\n" * 100,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert (tmp_path / "job.json").read_text() in {f"writer {i}\n" * 100 for i in range(6)}
    assert not list(tmp_path.glob("*.tmp"))


def test_a_replaced_input_is_encoded_again_on_resume(image_tok, tmp_path):
    folder = tmp_path / "images"
    write_images(folder, 4, size=24)
    out = tmp_path / "out"
    tokenize(image_tok, folder, out, shard_size=2, **RUN)
    before = rows(out)
    untouched = (out / "shard-000000.parquet").stat().st_mtime_ns
    write_images(tmp_path / "other", 1, size=32, seed=9)
    (folder / "img_003.png").write_bytes((tmp_path / "other" / "img_000.png").read_bytes())  # same name

    manifest = tokenize(image_tok, folder, out, shard_size=2, **RUN)
    assert manifest["run"]["shards"] == 1  # only the shard holding the replaced file was redone
    assert (out / "shard-000000.parquet").stat().st_mtime_ns == untouched
    after = rows(out)
    assert after["img_003.png"]["token_shape"] == [16, 16, 1] != before["img_003.png"]["token_shape"]
    assert (
        after["img_003.png"]["ids"] == load_tokenizer(image_tok).encode(str(folder / "img_003.png")).flatten().tolist()
    )
    assert after["img_002.png"] == before["img_002.png"]
    assert tokenize(image_tok, folder, out, shard_size=2, **RUN)["run"]["shards"] == 0  # nothing changed since


# -- a residual tokenizer's first codebooks -----------------------------------------------------------
def test_num_codebooks_writes_the_prefix(audio_tok, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    rate = TINY_AUDIO_MODEL["sample_rate"]
    for i, seconds in enumerate((0.5, 1.0)):
        sf.write(clips / f"{i}.wav", np.sin(np.arange(int(rate * seconds)) / (5 + i)).astype(np.float32) * 0.5, rate)
    full = tokenize(audio_tok, clips, tmp_path / "full", **RUN)
    prefix = tokenize(audio_tok, clips, tmp_path / "prefix", num_codebooks=1, **RUN)
    assert full["vocab"]["num_codebooks"] == 2 and prefix["vocab"]["num_codebooks"] == prefix["num_codebooks"] == 1
    for key, row in rows(tmp_path / "prefix").items():
        whole = rows(tmp_path / "full")[key]
        assert row["token_shape"] == [whole["token_shape"][0], 1]
        assert row["ids"] == whole["ids"][0::2]  # codebook-minor: codebook 0 is every other id
    llm = list(ShardDataset(tmp_path / "prefix", llm_ids=True))  # the stored layout frames the prefix
    assert all(len(sample["ids"]) == sample["token_shape"][0] + 2 for sample in llm)
    with pytest.raises(ValueError, match=r"num_codebooks must be in \[1, 2\]"):
        tokenize(audio_tok, clips, tmp_path / "bad", num_codebooks=3, **RUN)


# -- long items: streamed through the tokenizer's exact path ----------------------------------------------
def test_a_streamed_recording_gets_the_row_of_the_whole_one(audio_tok, tmp_path, monkeypatch):
    clips = tmp_path / "clips"
    clips.mkdir()
    rng = np.random.default_rng(0)
    sf.write(clips / "long.wav", rng.normal(0, 0.05, (44100 * 2, 2)).astype(np.float32), 44100)  # resampled, mixed
    sf.write(clips / "short.wav", rng.normal(0, 0.2, 8000).astype(np.float32), 16000)
    whole_bytes = (clips / "long.wav").read_bytes()
    (clips / "long_truncated.wav").write_bytes(whole_bytes[: len(whole_bytes) // 2])
    whole = tmp_path / "whole"
    tokenize(audio_tok, clips, whole, **RUN)

    monkeypatch.setattr("mmtok.tokenize.STREAM_ABOVE", 10_000)  # the 2 s clips stream, the 0.5 s one does not
    monkeypatch.setattr("mmtok.tokenize.STREAM_PIECE", 777)
    seen = []
    real = FrozenTokenizer.encode_stream
    monkeypatch.setattr(FrozenTokenizer, "encode_stream", lambda self, p, **o: seen.append(1) or real(self, p, **o))
    streamed = tmp_path / "streamed"
    tokenize(audio_tok, clips, streamed, batch_size=4, **RUN)
    assert len(seen) == 2  # long.wav and its truncated copy
    assert rows(streamed) == rows(whole)  # ids, token shape, gain, sizes: the same row
    # The same reason; only how the file is named differs (the whole path decodes its bytes).
    reasons = [e["long_truncated.wav"].rsplit(": ", 1)[1] for e in (errors(streamed), errors(whole))]
    assert reasons[0] == reasons[1] == "the data chunk holds 176378 of 352800 bytes"

    monkeypatch.setattr(FrozenTokenizer, "streams", property(lambda self: False))  # e.g. a converted codec
    seen.clear()
    tokenize(audio_tok, clips, tmp_path / "not-streamed", **RUN)
    assert not seen and rows(tmp_path / "not-streamed") == rows(whole)
