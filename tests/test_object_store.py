"""Datasets and shards on object storage: a real S3-compatible server (moto's) on localhost, read
and written through fsspec URLs by mmtok tokenize, the training datasets and ShardDataset, with a
job killed mid-way and resumed."""

import os
import signal
import socket
import subprocess
import sys
import tarfile
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from train_helpers import TINY_IMAGE_MODEL, write_images

from mmtok.data import ImageDataset
from mmtok.models import build_tokenizer
from mmtok.shards import ShardDataset, read_manifest, shard_files
from mmtok.tokenize import tokenize


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server on a free localhost port; the AWS SDK (and so s3fs) is pointed at it."""
    moto_server = pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{port}",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        import fsspec

        fs = fsspec.filesystem("s3", skip_instance_cache=True)
        for bucket in ("media", "shards"):
            fs.mkdir(bucket)
        yield fs
    server.stop()


@pytest.fixture(scope="module")
def data(s3, tmp_path_factory):
    """20 images on local disk and the same in s3://media/images/ (a subfolder included), a tar
    and a parquet file of some of them; the tokenizer and a local reference run."""
    root = tmp_path_factory.mktemp("store")
    images = root / "images"
    paths = write_images(images, 14, size=24) + write_images(images / "sub", 6, size=32, seed=1)
    (images / "notes.txt").write_text("not an image")
    s3.put(str(images), "media/images", recursive=True)
    with tarfile.open(root / "part.tar", "w") as tar:
        for path in paths[:4]:
            tar.add(path, arcname=path.name)
    s3.put(str(root / "part.tar"), "media/part.tar")
    table = pa.table({"image": [{"bytes": p.read_bytes(), "path": p.name} for p in paths[:4]]})
    with s3.open("media/part.parquet", "wb") as f:
        pq.write_table(table, f, row_group_size=3)
    torch.manual_seed(0)
    tok = build_tokenizer(TINY_IMAGE_MODEL).save_pretrained(root / "tok")
    tokenize(tok, images, root / "local", shard_size=3, batch_size=2, num_workers=0, progress=False)
    return root, tok


def rows(output_dir, drop=("source",)) -> list[dict]:
    tables = []
    for name in shard_files(output_dir):
        tables.append(pq.read_table(name if isinstance(name, os.PathLike) else _s3_file(name)))
    table = pa.concat_tables(tables).drop_columns(list(drop))
    return sorted(table.to_pylist(), key=lambda r: r["key"])


def _s3_file(url: str):
    import fsspec

    return fsspec.open(url, "rb").open()


def test_tokenize_a_bucket_folder_into_another_bucket(data, s3):
    root, tok = data
    manifest = tokenize(
        tok, "s3://media/images", "s3://shards/run", shard_size=3, batch_size=2, num_workers=1, progress=False
    )
    assert manifest["input"] == "s3://media/images" and manifest["counts"]["samples"] == 20
    assert read_manifest("s3://shards/run") == manifest
    assert rows("s3://shards/run") == rows(root / "local")  # ids, keys, sizes: as from local disk
    sources = sorted(r["source"] for r in pq.read_table(_s3_file(shard_files("s3://shards/run")[0])).to_pylist())
    assert sources[0].startswith("s3://media/images/img_00")
    keys = s3.find("shards/run")
    assert not [k for k in keys if k.endswith(".tmp")] and "shards/run/manifest.json" in keys
    # LLM training reads the shards where they are.
    samples = list(ShardDataset("s3://shards/run", llm_ids=False))
    assert len(samples) == 20 and {s["key"] for s in samples} == {r["key"] for r in rows(root / "local")}


def test_tars_parquet_and_globs_in_a_bucket(data):
    root, tok = data

    def keys_and_ids(source):
        out = root / f"out-{len(list(root.glob('out-*')))}"
        tokenize(tok, source, out, shard_size=10, batch_size=4, num_workers=0, progress=False)
        table = sorted(rows(out), key=lambda r: r["index"])
        return [r["key"] for r in table], [r["ids"] for r in table]

    names = sorted(p.name for p in (root / "images").glob("*.png"))[:4]
    expected = keys_and_ids(str(root / "images" / "img_00[0-3].png"))
    assert expected[0] == names
    assert keys_and_ids("s3://media/images/img_00[0-3].png") == expected
    assert keys_and_ids("s3://media/part.tar") == ([f"part.tar/{n}" for n in names], expected[1])
    assert keys_and_ids("s3://media/part.parquet") == ([f"part.parquet/{i}" for i in range(4)], expected[1])


def test_training_images_from_a_bucket(data):
    root, _ = data
    local = ImageDataset(root / "images", size=16, random_crop=False, random_flip=False)
    remote = ImageDataset("s3://media/images", size=16, random_crop=False, random_flip=False)
    assert len(remote) == len(local) == 20
    assert all(torch.equal(remote[i], local[i]) for i in (0, 7, 19))


def test_killed_job_on_a_bucket_resumes(data, s3, tmp_path):
    root, tok = data
    out = "s3://shards/killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["tokenize", str(tok), "s3://media/images", out, "--shard-size", "1", "--batch-size", "1"]
    job = subprocess.Popen(
        [sys.executable, "-m", "mmtok", *args, "--num-workers", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    deadline = time.time() + 120
    while time.time() < deadline and job.poll() is None and len(shard_files(out)) < 3:
        time.sleep(0.05)
    job.send_signal(signal.SIGKILL)
    job.wait()
    kept = shard_files(out)
    assert 3 <= len(kept) < 20, f"the kill did not land mid-way ({len(kept)} of 20 shards committed)"
    assert not s3.exists("shards/killed/manifest.json")
    s3.pipe("shards/killed/shard-000019.parquet.tmp", b"half an upload")  # never read, overwritten
    # A kill between the copy to the final key and the delete leaves a temporary beside a committed shard.
    s3.pipe("shards/killed/shard-000000.parquet.tmp", b"already copied")

    manifest = tokenize(tok, "s3://media/images", out, shard_size=1, batch_size=1, num_workers=0, progress=False)
    assert manifest["run"]["shards"] == 20 - len(kept)  # only what had no committed shard was redone
    assert rows(out) == rows(root / "local")
    assert not [k for k in s3.find("shards/killed") if k.endswith(".tmp")]
    with pytest.raises(ValueError, match="shard_size"):  # another plan in the same place is refused
        tokenize(tok, "s3://media/images", out, shard_size=2, num_workers=0, progress=False)
