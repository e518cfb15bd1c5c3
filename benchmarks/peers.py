"""The peers' recipes, trained on the same batches for the same wall-clock budget as mmtok's.

- Images: the taming VQGAN architecture as `diffusers.VQModel` (down/up blocks of ResNet layers,
  attention in the middle, a VQ codebook), with its usual L1 + codebook/commitment losses and the
  same widths, depth and latent size as the mmtok recipe it is compared with.
- Audio: the DAC architecture as transformers' `DacModel` built from its config (Snake convolutions,
  factorised RVQ with quantizer dropout) with DAC's multi-scale mel loss plus its codebook and
  commitment losses, at the mmtok codec's sample rate, hop and codebooks.

No weights are downloaded: both start from random weights, as mmtok's recipes do.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from mmtok.eval.systems import ReconstructionSystem
from mmtok.train.audio_losses import MultiScaleMelLoss
from mmtok.train.data import build_loader


@dataclass
class PeerRun:
    model: torch.nn.Module
    steps: int
    seconds: float
    label: str


def train_for(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor],
    dataset: Dataset,
    *,
    minutes: float,
    batch_size: int,
    lr: float,
    betas: tuple[float, float],
    seed: int = 0,
    label: str,
) -> PeerRun:
    """AdamW on `loss_fn(model, batch)` until `minutes` of wall-clock time are spent, on the batches
    mmtok's trainer draws for the same seed (mmtok.train.data), with a cosine decay over the budget."""
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=betas)
    batches = iter(build_loader(dataset, batch_size=batch_size, num_workers=0, seed=seed, rank=0, world_size=1))
    budget, started, steps = minutes * 60.0, time.perf_counter(), 0
    model.train()
    while (spent := time.perf_counter() - started) < budget:
        for group in optimizer.param_groups:
            group["lr"] = lr * (0.1 + 0.45 * (1 + math.cos(math.pi * spent / budget)))
        x, _ = next(batches)
        loss = loss_fn(model, x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        steps += 1
    model.eval()
    return PeerRun(model, steps, time.perf_counter() - started, label)


def train_peer_like(model: torch.nn.Module, loss_fn, trainer, minutes: float, label: str) -> PeerRun:
    """`train_for` on an mmtok Trainer's dataset with its batch size and generator optimiser settings."""
    train = trainer.config.train
    return train_for(
        model,
        loss_fn,
        trainer.dataset,
        minutes=minutes,
        batch_size=train.batch_size,
        lr=train.generator.lr,
        betas=tuple(train.generator.betas),
        seed=train.seed,
        label=label,
    )


# -- images --------------------------------------------------------------------------------------
def vqgan(config, codebook_size: int):
    """diffusers.VQModel with an mmtok ImageTokenizerConfig's widths, depth and latent size."""
    from diffusers import VQModel

    widths = tuple(config.base_channels * m for m in config.channel_multipliers)
    levels = len(widths)
    return VQModel(
        block_out_channels=widths,
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        layers_per_block=config.num_res_blocks,
        latent_channels=config.latent_dim,
        vq_embed_dim=config.latent_dim,
        num_vq_embeddings=codebook_size,
        norm_num_groups=min(32, widths[0]),
        mid_block_add_attention=config.attention,
    )


def vqgan_loss(model, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    return F.l1_loss(out.sample, x) + out.commit_loss.mean()


@torch.no_grad()
def vqgan_reconstruct(model, x: torch.Tensor) -> torch.Tensor:
    return model(x).sample.clamp(-1, 1)


def vqgan_bits(model, height: int, width: int) -> float:
    """Bits of one image's ids: its latent grid's positions x log2(codebook size)."""
    factor = 2 ** (len(model.config.block_out_channels) - 1)
    return (height // factor) * (width // factor) * math.log2(model.config.num_vq_embeddings)


# -- audio ----------------------------------------------------------------------------------------
def dac(config):
    """transformers' DacModel at an mmtok AudioTokenizerConfig's rate, hop, width and codebooks."""
    from transformers import DacConfig, DacModel

    options = config.quantizer.options
    strides = list(config.strides)
    return DacModel(
        DacConfig(
            encoder_hidden_size=config.base_channels,
            downsampling_ratios=strides,
            upsampling_ratios=strides[::-1],
            decoder_hidden_size=config.base_channels * 2 ** len(strides),
            hidden_size=config.latent_dim,
            n_codebooks=options.get("num_codebooks", 8),
            codebook_size=options.get("codebook_size", 1024),
            codebook_dim=options.get("codebook_dim", 8),
            quantizer_dropout=options.get("quantizer_dropout", 0.0),
            sampling_rate=config.sample_rate,
            hop_length=math.prod(strides),
        )
    )


class DacLoss:
    """DAC's generator loss without its GAN: 15 x multi-scale mel + codebook + 0.25 x commitment
    (the last two come weighted from DacModel itself)."""

    def __init__(self, sample_rate: int):
        self.mel = MultiScaleMelLoss(sample_rate)

    def __call__(self, model, x: torch.Tensor) -> torch.Tensor:
        out = model(x)
        recon = out.audio_values.unsqueeze(1)
        return 15.0 * self.mel(recon, x[..., : recon.shape[-1]]) + out.loss.mean()


@torch.no_grad()
def dac_reconstruct(model, x: torch.Tensor, num_codebooks: int) -> torch.Tensor:
    return model(x, n_quantizers=num_codebooks).audio_values.unsqueeze(1).clamp(-1, 1)


# -- as `mmtok eval` systems (mmtok.eval.systems): scored beside mmtok by the same suite ----------
def vqgan_system(model, input_spec) -> ReconstructionSystem:
    """The trained VQGAN on the items as `input_spec` prepares them, at its grid's bits."""

    return ReconstructionSystem(
        "VQGAN",
        "image",
        input_spec,
        lambda x, setting: vqgan_reconstruct(model, x),
        lambda x, setting: vqgan_bits(model, *x.shape[-2:]),
    )


def dac_system(model, input_spec, depths: list[int]) -> ReconstructionSystem:
    """The trained DAC at its first n codebooks for each n of `depths` (the last is its plain run)."""
    config = model.config

    def codebooks(setting) -> int:
        return config.n_codebooks if setting is None else setting[1]

    def bits(x: torch.Tensor, setting) -> float:
        frames = math.ceil(x.shape[-1] / config.hop_length)
        return frames * codebooks(setting) * math.log2(config.codebook_size)

    def reconstruct(x: torch.Tensor, setting) -> torch.Tensor:
        return dac_reconstruct(model, x, codebooks(setting))

    settings = [("codebooks", n) for n in depths]
    return ReconstructionSystem(
        "DAC", "audio", input_spec, reconstruct, bits, settings, full_setting=("codebooks", config.n_codebooks)
    )
