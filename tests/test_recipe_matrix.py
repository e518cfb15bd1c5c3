"""One training step of every recipe under every loss option: GAN hinge / non-saturating, adaptive
weight on/off, LeCam on/off, perceptual on/off (images, video frames), EMA on/off; the video recipe
under each GAN option once, its 3-D and per-frame discriminators and perceptual loss in turn. Each step must train the
tokenizer and the discriminator, log the terms the options ask for, and nothing else."""

import itertools
import json

import numpy as np
import pytest
import soundfile as sf
import torch
from train_helpers import read_metrics, tiny_config, write_config, write_images
from video_helpers import TINY_VIDEO, moving_frames, write_clip

from mmtok.models import flavour
from mmtok.train.config import load_run_config
from mmtok.train.perceptual import PerceptualLoss, save_perceptual_weights
from mmtok.train.trainer import Trainer

TINY_EEG = {**flavour("eeg"), "quantizer": {"kind": "rvq", "options": {"codebook_size": 16, "num_codebooks": 2}}}
GAN = list(itertools.product(["hinge", "non_saturating"], [True, False], [0.0, 0.1]))  # kind, adaptive, LeCam
CASES = [
    (recipe, *gan, perceptual, ema)
    for recipe in ("image", "image1d", "audio", "eeg")
    for gan in GAN
    for perceptual in ([False, True] if recipe not in ("audio", "eeg") else [False])
    for ema in (0.0, 0.99)
]
CASES += [("video", *gan, perceptual, 0.99) for gan, perceptual in zip(GAN, [False, True] * 4)]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_images(root / "images", 4, size=20)
    (root / "audio").mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        tone = np.sin(2 * np.pi * rng.uniform(100, 900) * np.arange(4000) / 8000) * 0.3
        sf.write(root / "audio" / f"clip{i}.wav", tone.astype(np.float32), 8000)
    for i in range(2):
        write_clip(root / "videos" / f"clip{i}.mp4", moving_frames(9, 20, 24, seed=i))
    (root / "eeg").mkdir()
    for i in range(2):
        eeg = rng.normal(0, 20, (3, 300))
        np.savez(root / "eeg" / f"rec{i}.npz", data=eeg, channel_names=["Fz", "Cz", "Pz"], sample_rate=200)
    torch.manual_seed(0)
    save_perceptual_weights(PerceptualLoss.from_random_init(seed=0), root / "vgg.safetensors")
    return root


def run_config(recipe: str, data, out, gan_loss, adaptive, lecam, perceptual, ema) -> dict:
    config = tiny_config(out, data / "images")
    if recipe == "image1d":
        config["model"] = flavour("image1d")
    if recipe == "audio":
        config["model"] = flavour("audio")
        config["data"] = {"source": str(data / "audio"), "segment_seconds": 0.25}
    if recipe == "eeg":
        config["model"] = TINY_EEG
        config["data"] = {"source": str(data / "eeg"), "segment_patches": 2, "channels": 4}
    config["train"].update(max_steps=1, checkpoint_every=100, ema_decay=ema)
    config["loss"] = {"gan_start_step": 0, "gan_loss": gan_loss, "adaptive_gan_weight": adaptive,
                      "lecam_weight": lecam}  # fmt: skip
    if recipe in ("audio", "eeg"):
        config["loss"]["modality"] = {"discriminator_channels": 4}
    if recipe == "video":
        config["model"] = TINY_VIDEO
        config["data"] = {"source": str(data / "videos"), "frames": 5}
        config["loss"]["modality"] = {"discriminator": "3d" if gan_loss == "hinge" else "frames"}
    if perceptual:
        config["loss"].setdefault("modality", {}).update(
            {"perceptual_weight": 0.5, "perceptual_weights": str(data / "vgg.safetensors")}
        )
    return config


def parameters(module) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in module.parameters()])


@pytest.mark.parametrize("recipe, gan_loss, adaptive, lecam, perceptual, ema", CASES)
def test_one_step_of_every_recipe_and_loss_option(data, tmp_path, recipe, gan_loss, adaptive, lecam, perceptual, ema):
    config = run_config(recipe, data, tmp_path / "run", gan_loss, adaptive, lecam, perceptual, ema)
    trainer = Trainer(load_run_config(write_config(tmp_path / "c.yaml", config), []))
    tokenizer_before = parameters(trainer.unwrapped)
    disc_before = parameters(trainer.accelerator.unwrap_model(trainer.disc))
    trainer.fit()

    [metrics] = read_metrics(tmp_path / "run")
    assert trainer.nan_skips == 0 and np.isfinite(metrics["loss/total"])
    assert not torch.equal(parameters(trainer.unwrapped), tokenizer_before)
    assert not torch.equal(parameters(trainer.accelerator.unwrap_model(trainer.disc)), disc_before)
    assert "loss/generator" in metrics and "loss/discriminator" in metrics
    if gan_loss == "non_saturating":
        assert metrics["loss/generator"] > 0  # softplus(-fake); hinge's -mean(fake) has either sign
    assert (metrics["loss/adaptive_weight"] != 1.0) == adaptive
    assert ("loss/lecam" in metrics) == (lecam > 0)
    assert ("loss/perceptual" in metrics) == perceptual
    assert ("loss/feature_matching" in metrics) == (recipe in ("audio", "eeg"))
    checkpoint = trainer.output_dir / "checkpoints" / "step_00000001"
    assert (trainer.ema is not None) == (ema > 0) == (checkpoint / "ema.safetensors").is_file()
    assert json.loads((checkpoint / "trainer_state.json").read_text())["step"] == 1
