"""Spectral reconstruction losses and feature matching for audio codecs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchaudio.transforms import MelSpectrogram


class MultiScaleMelLoss(nn.Module):
    """L1 between log-mel spectrograms at several window sizes (DAC uses 7 scales, 32 to 2048
    samples), so both transients and pitch are penalised."""

    def __init__(
        self, sample_rate: int, window_sizes=(32, 64, 128, 256, 512, 1024, 2048), mel_bins=(5, 10, 20, 40, 80, 160, 320)
    ):
        super().__init__()
        if len(window_sizes) != len(mel_bins):
            raise ValueError("window_sizes and mel_bins must have the same length")
        self.mels = nn.ModuleList(
            MelSpectrogram(
                sample_rate,
                n_fft=w,
                win_length=w,
                hop_length=w // 4,
                n_mels=m,
                power=1.0,
                center=True,
                f_min=0.0,
                f_max=sample_rate / 2,
            )
            for w, m in zip(window_sizes, mel_bins)
        )

    def forward(self, recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        total = recon.new_zeros((), dtype=torch.float32)
        for mel in self.mels:
            a, b = mel(recon.float()), mel(x.float())
            total = total + F.l1_loss(a.clamp_min(1e-5).log10(), b.clamp_min(1e-5).log10()) + F.l1_loss(a, b)
        return total / len(self.mels)


class MultiResolutionSTFTLoss(nn.Module):
    """Spectral convergence + log-magnitude L1 at several STFT resolutions (Parallel WaveGAN)."""

    def __init__(self, fft_sizes=(512, 1024, 2048)):
        super().__init__()
        self.fft_sizes = tuple(fft_sizes)
        for n in self.fft_sizes:
            self.register_buffer(f"window_{n}", torch.hann_window(n), persistent=False)

    def magnitude(self, x: torch.Tensor, n: int) -> torch.Tensor:
        spec = torch.stft(
            x.float().flatten(0, -2), n, hop_length=n // 4, window=getattr(self, f"window_{n}"), return_complex=True
        )
        return spec.abs().clamp_min(1e-7)

    def forward(self, recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        total = recon.new_zeros((), dtype=torch.float32)
        for n in self.fft_sizes:
            a, b = self.magnitude(recon, n), self.magnitude(x, n)
            convergence = torch.linalg.norm(b - a) / torch.linalg.norm(b).clamp_min(1e-7)
            total = total + convergence + F.l1_loss(a.log(), b.log())
        return total / len(self.fft_sizes)


def feature_matching_loss(
    real_features: list[list[torch.Tensor]], fake_features: list[list[torch.Tensor]]
) -> torch.Tensor:
    """Mean L1 between the discriminators' intermediate features on real (targets) and fake audio."""
    terms = [
        F.l1_loss(fake, real.detach())
        for real_list, fake_list in zip(real_features, fake_features)
        for real, fake in zip(real_list, fake_list)
    ]
    if not terms:
        raise ValueError("no discriminator features to match")
    return torch.stack(terms).mean()
