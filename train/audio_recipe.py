"""Training audio codecs: random segments of a folder of recordings, multi-scale mel + multi-resolution
STFT + waveform L1 (+ phase-derivative) losses, multi-period and STFT discriminators with feature matching."""

from __future__ import annotations

import dataclasses

from torch.utils.data import Dataset

from mmtok.train.audio_discriminators import AudioDiscriminator, WaveformAdversarial
from mmtok.train.audio_losses import MultiResolutionSTFTLoss, MultiScaleMelLoss, PhaseDerivativeLoss
from mmtok.train.losses import reconstruction_loss
from mmtok.train.recipe import Recipe


@dataclasses.dataclass
class AudioDataConfig:
    source: str = "data_cache/speech"  # a folder of wav/flac/ogg/mp3 files (scripts/fetch_data.sh fills it)
    segment_seconds: float = 1.0  # recordings are prepared (rate, channels, loudness) as model.* says


@dataclasses.dataclass
class AudioLossConfig:
    mel_weight: float = 15.0
    stft_weight: float = 1.0
    # The phase's frame-to-frame and bin-to-bin steps at the codec's own STFT framing
    # (audio_losses.PhaseDerivativeLoss); 0 leaves it out.
    phase_weight: float = 0.0
    feature_matching_weight: float = 2.0
    discriminator_channels: int = 32
    # The discriminators: HiFi-GAN's multi-period ones at these periods and EnCodec-style STFT ones at
    # these window sizes. The period ones are most of the cost (2-D convolutions over the waveform);
    # a CPU budget can keep the STFT ones alone.
    discriminator_periods: list[int] = dataclasses.field(default_factory=lambda: [2, 3, 5, 7, 11])
    discriminator_fft_sizes: list[int] = dataclasses.field(default_factory=lambda: [2048, 1024, 512])


class AudioRecipe(WaveformAdversarial, Recipe):
    modality = "audio"
    data_config_class = AudioDataConfig
    loss_config_class = AudioLossConfig

    def __init__(self, data: dict, loss, model, input_spec):
        super().__init__(data, loss, model, input_spec)
        self.mel = MultiScaleMelLoss(model.sample_rate)
        self.stft = MultiResolutionSTFTLoss()
        self.phase = PhaseDerivativeLoss(model.stft_window, model.hop_length)

    def build_dataset(self) -> Dataset:
        from mmtok.data.audio import AudioDataset

        return AudioDataset(self.data.source, spec=self.input_spec, segment_seconds=self.data.segment_seconds)

    def build_discriminator(self):
        terms = self.terms
        periods, windows = terms.discriminator_periods, terms.discriminator_fft_sizes
        return AudioDiscriminator(periods, windows, terms.discriminator_channels)

    def reconstruction_losses(self, x, recon):
        x = x[..., : recon.shape[-1]]  # the codec reconstructs whole frames only
        self.mel.to(x.device)
        self.stft.to(x.device)
        losses = {
            f"waveform_{self.loss.reconstruction}": (
                self.loss.reconstruction_weight,
                reconstruction_loss(recon, x, self.loss.reconstruction),
            ),
            "mel": (self.terms.mel_weight, self.mel(recon, x)),
            "stft": (self.terms.stft_weight, self.stft(recon, x)),
        }
        if self.terms.phase_weight > 0:
            losses["phase"] = (self.terms.phase_weight, self.phase(recon, x))
        return losses

    def log_media(self, writer, x, recon, step):
        rate = self.model_config.sample_rate
        for i in range(min(2, x.shape[0])):
            writer.add_audio(f"input/{i}", x[i, 0].float().clamp(-1, 1).cpu(), step, sample_rate=rate)
            writer.add_audio(f"reconstruction/{i}", recon[i, 0].float().clamp(-1, 1).cpu(), step, sample_rate=rate)
