"""Spectral reconstruction losses and feature matching for audio codecs."""

from __future__ import annotations

import auraloss
import torch
import torch.nn.functional as F
from torch import nn
from torchaudio.transforms import MelSpectrogram


class MultiScaleMelLoss(nn.Module):
    """L1 between log-mel spectrograms at several window sizes (DAC uses 7 scales, 32 to 2048
    samples), so both transients and pitch are penalised."""

    # Not auraloss's mel losses: they use librosa's Slaney-normalised filterbank (librosa is not a
    # dependency), natural log, one band count for every size, and add spectral convergence; this is
    # DAC's loss (torchaudio's HTK filterbank, log10 L1 plus linear-magnitude L1, bands per size).

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
    """Spectral convergence + log-magnitude L1 at several STFT resolutions (Parallel WaveGAN), from auraloss.

    Hann window of n, hop n/4, magnitudes floored at 1e-7 (auraloss's ``eps`` floors the power, hence
    1e-14); spectral convergence is over the whole batch, and the resolutions are averaged. Any input
    shape ``(..., samples)``.
    """

    def __init__(self, fft_sizes=(512, 1024, 2048)):
        super().__init__()
        self.fft_sizes = tuple(fft_sizes)
        sizes = list(self.fft_sizes)
        self.loss = auraloss.freq.MultiResolutionSTFTLoss(
            fft_sizes=sizes, hop_sizes=[n // 4 for n in sizes], win_lengths=sizes, eps=1e-14
        )

    def forward(self, recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        # auraloss wants (batch, channels, samples), and its windows are float32: the STFT runs in float32.
        as_3d = lambda t: t.float().reshape(-1, 1, t.shape[-1])  # noqa: E731
        return self.loss(as_3d(recon), as_3d(x))


class PhaseDerivativeLoss(nn.Module):
    """How far the reconstruction's STFT phase moves from frame to frame (instantaneous frequency) and
    from bin to bin (group delay) from the input's, at one framing (the codec's own: Hann window
    `n_fft`, hop `hop`), as 1 - cos of the difference, weighted by the input's magnitude: phase
    where there is no energy is noise, and the pitch harmonics are where the weight is.

    Magnitude losses never see phase, and a waveform L1 penalises a phase the decoder cannot know
    (where a frame starts within a period); the derivatives are what makes harmonics ring across
    frames instead of cancelling in the overlap-add (the instantaneous-frequency and group-delay
    terms of APNet, Ai & Ling 2023; cosine rather than their anti-wrapped L1, so no wrap is needed).
    The reconstruction's unit phasors are floored at 1e-3 of each clip's peak magnitude, so its
    near-silent bins keep bounded gradients. Written here: no audio library ships a phase loss."""

    def __init__(self, n_fft: int, hop: int):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop

    def forward(self, recon: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        window = torch.hann_window(self.n_fft, device=x.device)
        spectra = [
            torch.stft(
                t.float().reshape(-1, t.shape[-1]),
                self.n_fft,
                self.hop,
                window=window,
                center=False,
                return_complex=True,
            )
            for t in (recon, x)
        ]  # (N, bins, frames)
        magnitude = spectra[1].abs()
        floor = (1e-3 * magnitude.amax(dim=(1, 2), keepdim=True).clamp_min(1e-8)) ** 2
        recon_unit = spectra[0] / (spectra[0].abs().square() + floor).sqrt()
        target_unit = spectra[1] / magnitude.clamp_min(1e-12)
        total = recon.new_zeros((), dtype=torch.float32)
        for axis in (2, 1):  # frames (instantaneous frequency), bins (group delay)
            agreement = (_step(recon_unit, axis) * _step(target_unit, axis).conj()).real
            weight = _step(magnitude, axis).sqrt()  # the geometric mean of the two neighbours' magnitudes
            total = total + (weight * (1 - agreement)).sum() / weight.sum().clamp_min(1e-12)
        return total / 2


def _step(values: torch.Tensor, axis: int) -> torch.Tensor:
    """Each element times the conjugate of the one before it along `axis` (a phase difference, for
    unit phasors; a product of neighbours, for magnitudes)."""
    later, earlier = values.narrow(axis, 1, values.shape[axis] - 1), values.narrow(axis, 0, values.shape[axis] - 1)
    return later * (earlier.conj() if earlier.is_complex() else earlier)


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
