"""Waveform discriminators: multi-period (HiFi-GAN) and multi-resolution STFT (EnCodec-style, complex input).

Each sub-discriminator returns (logits, features); the combined module returns one such pair per
sub-discriminator, so losses can average over scales and feature matching can use every layer.
`WaveformAdversarial` is the part of a recipe that trains against them (audio, and EEG channels
seen as waveforms).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmtok.train.audio_losses import feature_matching_loss
from mmtok.train.losses import generator_loss


def _leaky(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.1)


class PeriodDiscriminator(nn.Module):
    """Folds the waveform into (T / p, p) so 2-D convolutions see samples p apart: periodic structure."""

    def __init__(self, period: int, channels: int = 32):
        super().__init__()
        self.period = period
        widths = [1, channels, channels * 4, channels * 16, channels * 16]
        self.convs = nn.ModuleList(
            nn.Conv2d(a, b, (5, 1), stride=(3, 1) if i < 3 else (1, 1), padding=(2, 0))
            for i, (a, b) in enumerate(zip(widths[:-1], widths[1:]))
        )
        self.out = nn.Conv2d(widths[-1], 1, (3, 1), padding=(1, 0))

    def forward(self, x: torch.Tensor):
        b, c, t = x.shape
        pad = (-t) % self.period
        x = F.pad(x, (0, pad), mode="reflect" if pad < t else "constant")
        x = x.reshape(b, c, -1, self.period)
        features = []
        for conv in self.convs:
            x = _leaky(conv(x))
            features.append(x)
        return self.out(x), features


class STFTDiscriminator(nn.Module):
    """2-D convolutions over a complex spectrogram (real and imaginary parts as channels)."""

    def __init__(self, n_fft: int, channels: int = 32):
        super().__init__()
        self.n_fft = n_fft
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        widths = [2, channels, channels, channels, channels]
        self.convs = nn.ModuleList(
            nn.Conv2d(
                a,
                b,
                (3, 9) if i else (3, 8),
                stride=(1, 2) if i else (1, 1),
                dilation=(2**i if i else 1, 1),
                padding=(2**i if i else 1, 4 if i else 3),
            )
            for i, (a, b) in enumerate(zip(widths[:-1], widths[1:]))
        )
        self.out = nn.Conv2d(widths[-1], 1, (3, 3), padding=(1, 1))

    def forward(self, x: torch.Tensor):
        spec = torch.stft(
            x.float().flatten(0, 1), self.n_fft, hop_length=self.n_fft // 4, window=self.window, return_complex=True
        )
        x = torch.view_as_real(spec).permute(0, 3, 2, 1)  # (B, 2, frames, bins)
        features = []
        for conv in self.convs:
            x = _leaky(conv(x))
            features.append(x)
        return self.out(x), features


class AudioDiscriminator(nn.Module):
    def __init__(self, periods=(2, 3, 5, 7, 11), fft_sizes=(2048, 1024, 512), channels: int = 32):
        super().__init__()
        self.discriminators = nn.ModuleList(
            [PeriodDiscriminator(p, channels) for p in periods] + [STFTDiscriminator(n, channels) for n in fft_sizes]
        )

    def forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, list[torch.Tensor]]]:
        return [d(x) for d in self.discriminators]


class WaveformAdversarial:
    """Recipe methods for a `AudioDiscriminator` (a list of (logits, features)):
    the generator's adversarial loss with feature matching, and the discriminator's logits. The
    recipe's `terms` must have `feature_matching_weight`; signals are (B, channels, samples)."""

    def generator_adversarial(self, disc, x, recon, kind):
        x = x[..., : recon.shape[-1]]  # codecs reconstruct whole frames only
        fake = disc(recon)
        with torch.no_grad():
            real = disc(x)
        matching = feature_matching_loss([f for _, f in real], [f for _, f in fake])
        return generator_loss([logits for logits, _ in fake], kind), {
            "feature_matching": (self.terms.feature_matching_weight, matching)
        }

    def discriminator_logits(self, disc, x, fake):
        x = x[..., : fake.shape[-1]]
        outputs = disc(torch.cat([x, fake]))
        real = [logits[: x.shape[0]] for logits, _ in outputs]
        fake_logits = [logits[x.shape[0] :] for logits, _ in outputs]
        return real, fake_logits
