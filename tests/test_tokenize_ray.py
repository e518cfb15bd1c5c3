"""`mmtok tokenize --engine ray` on a local Ray cluster (2 CPUs, started here): the rows, errors
and manifest of the accelerate engine; a killed worker retried; a killed job resumed by either
engine; and mmtok.ray_data's stages in a pipeline of Ray Data's own batches."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import test_shards
from test_shards import BATCH, SHARD, rows

from mmtok.shards import ERRORS_FILE, read_manifest, shard_files, shard_stats
from mmtok.storage import Folder
from mmtok.tokenize import tokenize

ray = pytest.importorskip("ray")
# Drivers in other processes need the cluster's credentials, which ray.init puts in os.environ.
ENV_NOW = {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
# The accelerate engine's inputs and reference run (module fixtures of test_shards, shared as they are).
tok_dir, images, reference = test_shards.tok_dir, test_shards.images, test_shards.reference


@pytest.fixture(scope="module")
def cluster():
    """A 2-CPU Ray cluster for this module; its address, for drivers in this and other processes."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # workers encode with one thread, like the reference
    ray.init(num_cpus=2, logging_level="ERROR", include_dashboard=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def ray_job(tok_dir, images, out, address, **options):
    return tokenize(
        tok_dir, images, out, shard_size=SHARD, batch_size=BATCH, engine="ray", ray={"address": address},
        progress=False, **options,
    )  # fmt: skip


def test_the_ray_engine_writes_the_rows_and_errors_of_the_default_engine(cluster, reference, tok_dir, images, tmp_path):
    manifest = ray_job(tok_dir, images, tmp_path / "out", cluster)
    assert rows(tmp_path / "out") == rows(reference)
    assert (tmp_path / "out" / ERRORS_FILE).read_text() == (reference / ERRORS_FILE).read_text()
    assert manifest["counts"] == read_manifest(reference)["counts"]
    assert manifest["run"]["engine"] == "ray" and manifest["run"]["actors"] == 2
    writers = {shard_stats(Folder(tmp_path / "out"), Path(f).name)["process"] for f in shard_files(tmp_path / "out")}
    assert len(writers) == 2 and all(w.startswith("ray:") for w in writers)  # the workers wrote them


def _actor_pids() -> list[int]:
    """Processes of the job's encoding actors (Ray titles them after the callable class)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"ShardTokenizer" in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def test_a_worker_killed_mid_job_is_retried_and_every_row_ends_once(cluster, reference, tok_dir, images, tmp_path):
    out = tmp_path / "out"
    killed = []

    def kill_an_actor_after_the_first_shard():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            pids = _actor_pids()
            committed = len(list(out.glob("shard-*.parquet")))
            if pids and committed:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(committed)
            time.sleep(0.05)

    killer = threading.Thread(target=kill_an_actor_after_the_first_shard)
    killer.start()
    manifest = ray_job(tok_dir, images, out, cluster)
    killer.join()
    assert killed, "no actor was running once a shard was committed"
    assert killed[0] < manifest["num_shards"]  # the kill landed mid-way
    assert rows(out) == rows(reference)
    assert manifest["counts"] == read_manifest(reference)["counts"]
    assert not list(out.rglob("*.tmp*"))  # the killed worker's half-written file was cleaned away


def test_a_killed_ray_job_resumes_under_either_engine(cluster, reference, tok_dir, images, tmp_path):
    out = tmp_path / "out"
    driver = subprocess.Popen(
        [sys.executable, "-m", "mmtok", "tokenize", str(tok_dir), str(images), str(out), "--shard-size", str(SHARD),
         "--batch-size", str(BATCH), "--engine", "ray", "--ray-address", cluster],
        env={**os.environ, **ENV_NOW}, stdout=subprocess.DEVNULL, stderr=(tmp_path / "driver.log").open("w"),
    )  # fmt: skip
    deadline = time.monotonic() + 180
    while len(list(out.glob("shard-*.parquet"))) < 3 and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    driver.kill()
    driver.wait()
    committed = len(list(out.glob("shard-*.parquet")))
    assert 3 <= committed < read_manifest(reference)["num_shards"], (tmp_path / "driver.log").read_text()[-3000:]
    assert not (out / "manifest.json").exists()
    # The accelerate engine finishes the Ray job's folder, redoing only what was not committed.
    resumed = subprocess.run(
        [sys.executable, "-m", "mmtok", "tokenize", str(tok_dir), str(images), str(out), "--shard-size", str(SHARD),
         "--batch-size", str(BATCH), "--num-workers", "0"],
        env={**os.environ, **ENV_NOW}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    manifest = read_manifest(out)
    assert manifest["run"]["shards"] <= manifest["num_shards"] - committed
    assert rows(out) == rows(reference)
    # And the Ray engine finds nothing left to do in a finished folder of the other engine.
    again = ray_job(tok_dir, images, out, cluster)
    assert again["run"]["shards"] == 0 and rows(out) == rows(reference)


def test_the_stages_give_the_same_ids_in_any_ray_batches(cluster, tok_dir, images, tmp_path):
    from mmtok.ray_data import EncodeMedia, PrepareMedia

    expected = {r["source"]: r["ids"] for r in rows(_deterministic_job(tok_dir, images, tmp_path / "job"))}
    files = sorted(str(p) for p in images.rglob("*") if p.is_file())
    prepared = ray.data.read_binary_files(files, include_paths=True).map_batches(
        PrepareMedia, fn_constructor_kwargs={"tokenizer_dir": str(tok_dir)}, batch_size=5,
        compute=ray.data.ActorPoolStrategy(size=1), num_cpus=0.5,
    )  # fmt: skip
    for batch_size in (3, 7):
        encoded = prepared.map_batches(
            EncodeMedia, fn_constructor_kwargs={"tokenizer_dir": str(tok_dir), "deterministic": 4},
            batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=1), num_cpus=0.5,
        )  # fmt: skip
        got = {r["path"]: r for r in encoded.take_all()}
        assert len(got) == len(files)
        assert {p: list(r["ids"]) for p, r in got.items() if r["error"] is None} == expected, batch_size
        assert sum(r["error"] is not None for r in got.values()) == len(files) - len(expected)


def _deterministic_job(tok_dir, images, out):
    tokenize(tok_dir, images, out, batch_size=2, deterministic=4, num_workers=0, progress=False)
    return out
