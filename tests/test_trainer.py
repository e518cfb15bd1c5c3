"""The Accelerate trainer: config errors, bad files, resume after a kill, two processes, quickstart."""

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from train_helpers import (
    assert_identical_ranks,
    read_metrics,
    tiny_config,
    train_in_two_processes,
    write_config,
    write_images,
)

from mmtok.config import ConfigError
from mmtok.train.checkpoint import latest_checkpoint
from mmtok.train.config import OPTIMIZERS, load_run_config
from mmtok.train.trainer import Trainer

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def test_unknown_config_key_is_an_error_naming_it(tmp_path):
    config = write_config(tmp_path / "c.yaml", tiny_config(tmp_path / "run", tmp_path))
    with pytest.raises(ConfigError, match=r"train\.max_stpes: unknown key"):
        load_run_config(config, ["train.max_stpes=3"])
    with pytest.raises(ConfigError, match=r"model\.base_chanels: unknown key"):
        load_run_config(config, ["model.base_chanels=3"])
    with pytest.raises(ConfigError, match=r"train\.batch_size: expected an integer"):
        load_run_config(config, ["train.batch_size=two"])
    result = subprocess.run(
        [sys.executable, "-m", "mmtok", "train", str(config), "train.bogus=1"], capture_output=True, text=True, env=ENV
    )
    assert result.returncode != 0 and "train.bogus: unknown key" in result.stderr


def test_corrupt_files_are_skipped_and_counted(tmp_path):
    data = tmp_path / "data"
    write_images(data, 6)
    (data / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (data / "notes.jpg").write_text("this is text, not an image")
    config = load_run_config(None, [])
    config = load_run_config(
        write_config(
            tmp_path / "c.yaml",
            tiny_config(tmp_path / "run", data, train={"max_steps": 6, "batch_size": 4, "checkpoint_every": 100}),
        ),
        [],
    )
    trainer = Trainer(config)
    trainer.fit()
    assert trainer.step == 6
    assert {Path(s).name for s in trainer.failed_sources} == {"broken.png", "notes.jpg"}
    state = json.loads((latest_checkpoint(tmp_path / "run") / "trainer_state.json").read_text())
    assert len(state["failed_sources"]) == 2
    assert read_metrics(tmp_path / "run")[-1]["data/failed_decodes"] == 2


def test_last_health_is_the_last_full_window_not_the_steps_left_after_it(tmp_path):
    data = tmp_path / "data"
    write_images(data, 4)
    train = {"max_steps": 5, "batch_size": 2, "health_every": 2, "checkpoint_every": 100}
    trainer = Trainer(
        load_run_config(write_config(tmp_path / "c.yaml", tiny_config(tmp_path / "run", data, train=train)), [])
    )
    trainer.fit()
    # Steps 3-4 of 2 images of 16 px at 2x downsampling: 2 x 2 x 64 tokens; step 5 alone has half.
    assert trainer.last_health[0]["total"] == 2 * 2 * 64


def test_the_optimizer_is_the_one_the_config_names(tmp_path):
    data = tmp_path / "data"
    write_images(data, 4)
    generator = {"name": "SGD", "lr": 0.01, "options": {"momentum": 0.9}}
    config = tiny_config(
        tmp_path / "run", data, train={"max_steps": 2, "checkpoint_every": 100, "generator": generator}
    )
    trainer = Trainer(load_run_config(write_config(tmp_path / "c.yaml", config), []))
    trainer.fit()
    optimizer = trainer.opt_g.optimizer if hasattr(trainer.opt_g, "optimizer") else trainer.opt_g
    assert type(optimizer) is torch.optim.SGD and optimizer.defaults["momentum"] == 0.9
    assert all("momentum_buffer" in optimizer.state[p] for p in trainer.tokenizer.parameters() if p.grad is not None)
    for override, message in (
        ("train.generator.name=Lion", re.escape(f"name must be one of {', '.join(OPTIMIZERS)}, got 'Lion'")),
        ("train.discriminator.name=Lion", "train.discriminator: name must be one of AdamW"),
        ("train.generator.options.nesterov_typo=true", "SGD takes no 'nesterov_typo'"),
    ):
        with pytest.raises(ConfigError, match=message) as refused:  # a ValueError
            load_run_config(write_config(tmp_path / "c.yaml", config), [override])
        assert isinstance(refused.value, ValueError)


def test_the_old_name_of_sample_every_still_works_and_warns_once(tmp_path, monkeypatch):
    from mmtok.train import config as train_config

    monkeypatch.setattr(train_config, "_warned_renamed", set())
    config = tiny_config(tmp_path / "run", tmp_path / "data")
    config["train"]["image_every"] = config["train"].pop("sample_every") + 5
    path = write_config(tmp_path / "c.yaml", config)
    with pytest.warns(FutureWarning, match="train.image_every is deprecated: it is now train.sample_every"):
        assert load_run_config(path, []).train.sample_every == 7
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per process: a second config with the old name is quiet
        assert load_run_config(None, ["train.image_every=9"]).train.sample_every == 9
    with pytest.raises(ConfigError, match="give only train.sample_every"):
        load_run_config(path, ["train.sample_every=3"])


def _launch_train(config: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mmtok", "train", str(config), *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=ENV,
    )


def test_resume_after_kill_continues_with_the_same_losses(tmp_path):
    data = tmp_path / "data"
    write_images(data, 12)
    train = {"max_steps": 30, "checkpoint_every": 3, "keep_checkpoints": 50}
    killed_cfg = write_config(tmp_path / "killed.yaml", tiny_config(tmp_path / "killed", data, train=train))
    whole_cfg = write_config(tmp_path / "whole.yaml", tiny_config(tmp_path / "whole", data, train=train))

    job = _launch_train(killed_cfg)
    deadline = time.time() + 120
    while latest_checkpoint(tmp_path / "killed") is None and time.time() < deadline and job.poll() is None:
        time.sleep(0.02)
    job.send_signal(signal.SIGKILL)
    job.wait()
    resumed_from = latest_checkpoint(tmp_path / "killed")
    assert resumed_from is not None, "the job never wrote a checkpoint"
    saved_step = json.loads((resumed_from / "trainer_state.json").read_text())["step"]
    assert saved_step < 30, "the job finished before it could be killed"

    resumed = subprocess.run(
        [sys.executable, "-m", "mmtok", "train", str(killed_cfg), "--resume"], capture_output=True, text=True, env=ENV
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    whole = subprocess.run(
        [sys.executable, "-m", "mmtok", "train", str(whole_cfg)], capture_output=True, text=True, env=ENV
    )
    assert whole.returncode == 0, whole.stderr[-2000:]

    # metrics.jsonl of the killed job holds its first life, then the resumed life from saved_step + 1.
    killed = read_metrics(tmp_path / "killed")
    restarts = [i for i in range(1, len(killed)) if killed[i]["step"] <= killed[i - 1]["step"]]
    after_resume = killed[restarts[-1] :] if restarts else [m for m in killed if m["step"] > saved_step]
    assert after_resume[0]["step"] == saved_step + 1
    reference = {m["step"]: m for m in read_metrics(tmp_path / "whole")}
    for metrics in after_resume:
        assert metrics["loss/total"] == pytest.approx(reference[metrics["step"]]["loss/total"], rel=1e-5, abs=1e-7)
    assert after_resume[-1]["step"] == 30


def test_two_processes_keep_identical_weights_and_codebooks(tmp_path):
    data = tmp_path / "data"
    write_images(data, 10)
    config = tiny_config(
        tmp_path / "run",
        data,
        data={"size": 32},
        train={"max_steps": 4, "checkpoint_every": 100},
        loss={"gan_start_step": 1, "lecam_weight": 0.1},
    )
    config["model"]["quantizer"] = {"kind": "vq", "options": {"codebook_size": 32, "dead_code_threshold": 0.5}}
    config["model"]["image_size"] = 32
    rank0, rank1 = train_in_two_processes(write_config(tmp_path / "c.yaml", config), tmp_path)
    assert_identical_ranks(rank0, rank1)
    codebook = "tokenizer.quantizer.codebook"
    assert bool(rank0["tokenizer.quantizer.initialised"])
    # Training moved the codebook away from where it started (identical copies of an untouched
    # codebook would pass the comparison trivially).
    assert not torch.allclose(rank0[codebook], rank0["initial_codebook"])


def test_quickstart_at_a_tiny_budget(tmp_path):
    from mmtok.eval.aggregate import means
    from mmtok.train.quickstart import run_quickstart

    report = run_quickstart(out=str(tmp_path / "qs"), max_steps=2, extra=["data.size=32", "train.batch_size=2"])
    assert report["steps"] == 2
    assert (tmp_path / "qs" / "tokenizer" / "model.safetensors").is_file()
    assert (tmp_path / "qs" / "tokenizer" / "config.json").is_file()
    heldout = report["heldout"]
    assert [row["item"] for row in heldout["items"]] == ["chelsea", "rocket", "china"]
    assert all(0 < row["psnr"] < 60 for row in heldout["items"])
    mean = means(heldout["summary"])
    assert mean["rate"] == pytest.approx(32 * 32 * math.log2(15_360) / (256 * 256), rel=1e-9)  # bits per pixel
    assert 0 < heldout["codebooks"][0]["utilization"] <= 1
    # JPEG, WebP and AVIF beside it at the lowest quality whose bits reach its own, item by item.
    for group in heldout["matched"].values():
        assert all(c["rate"] >= o["rate"] or c["setting"] == "q1" for c, o in zip(group["items"], heldout["items"]))
    assert "JPEG" in heldout["matched"] and (tmp_path / "qs" / "eval" / "index.html").is_file()
    # The same photos in gray: gray inputs, and their reconstructions' distance from gray is reported.
    gray = report["gray"]["items"]
    assert [row["item"] for row in gray] == ["chelsea", "rocket", "china"]
    assert all(row["colour_in"] < 1e-6 and row["channel_spread"] >= row["colour_out"] for row in gray)
    assert mean["colour_kept"] == pytest.approx(mean["colour_out"] / mean["colour_in"])
    assert mean["colour_in"] > 5  # the held-out photos include colour ones


def test_a_wall_clock_budget_ends_training_and_its_schedule(tmp_path):
    write_images(tmp_path / "data", 4)
    train = {"max_steps": 100_000, "max_minutes": 0.1, "checkpoint_every": 100_000, "log_every": 1}
    config = tiny_config(tmp_path / "run", tmp_path / "data", train=train)
    trainer = Trainer(load_run_config(write_config(tmp_path / "c.yaml", config), []))
    trainer.fit()
    assert 1 < trainer.step < 100_000
    state = json.loads((latest_checkpoint(tmp_path / "run") / "trainer_state.json").read_text())
    assert state["step"] == trainer.step and state["train_seconds"] >= 0.1 * 60
    rates = [m["lr/generator"] for m in read_metrics(tmp_path / "run")]
    # The cosine schedule followed the clock: it ends near its floor (0.1 x lr) long before max_steps
    # (how far the first logged step is from 1e-3 depends on how long that step took).
    assert rates[0] > 0.5e-3 > 0.15e-3 > rates[-1] and rates == sorted(rates, reverse=True)
