"""EEG training targets: the patch itself (relative L1/L2), its log-amplitude spectrum and its
phase (as cos/sin), from Hann-windowed FFTs of each patch and of the windows between patches
(LaBraM trains its tokenizer to predict a patch's Fourier amplitude and phase; here the same
targets are read off the reconstruction, so the one signal `decode` returns carries them).

Signals are (B, channels, samples) in network units with NaN marking missing samples in the
target; every loss averages over windows without missing samples.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

LOG_FLOOR = 1e-3  # of each window's mean band power: bands 30 dB under it count as equally quiet
LOG_BANDS = 16  # log-spaced frequency bands of the log-amplitude term
UNIT_EPS = 1e-8  # keeps the phase term's unit vectors finite; see spectral_losses


def _masked_mean(values: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Mean of `values` (..., N[, more]) over the positions where `present` (..., N) is True."""
    while present.ndim < values.ndim:
        present = present[..., None]
    weight = present.expand_as(values).to(values.dtype)
    return (values * weight).sum() / weight.sum().clamp_min(1.0)


def time_loss(recon: torch.Tensor, target: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """Absolute ("l1") or squared ("l2") error relative to the target's own (absolute or squared)
    size, over its present samples: NMSE for "l2". Relative, so that a quiet recording counts as
    much as a loud one (and EEG is noise-like: an absolute L1 is best served by a flat line)."""
    present = ~target.isnan()
    target = torch.nan_to_num(target)
    size = (lambda t: t.abs()) if kind == "l1" else (lambda t: t.square())  # noqa: E731
    return _masked_mean(size(recon - target), present) / _masked_mean(size(target), present).clamp_min(1e-12)


def window_spectra(signal: torch.Tensor, patch_size: int, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, T) -> Hann-windowed spectra of its patch_size windows from `offset` on,
    (B, C, windows, patch_size // 2 + 1), and which windows hold no missing sample (B, C, windows)."""
    count = (signal.shape[-1] - offset) // patch_size
    windows = signal[..., offset : offset + count * patch_size].unflatten(-1, (count, patch_size)).float()
    present = ~windows.isnan().any(dim=-1)
    hann = torch.hann_window(patch_size, periodic=True, device=signal.device)
    return torch.fft.rfft(torch.nan_to_num(windows) * hann, norm="ortho"), present


@functools.cache
def log_band_matrix(bins: int, bands: int = LOG_BANDS) -> torch.Tensor:
    """(bins, <= bands) averaging matrix: DC alone, then bands whose edges are spaced evenly in log
    frequency (the lowest ones a single bin each), as EEG's own bands are (0.5-4, 4-8, 8-13, 13-30 Hz)."""
    edges = sorted({0, 1, *np.unique(np.geomspace(1, bins, bands).round().astype(int)).tolist(), bins})
    matrix = torch.zeros(bins, len(edges) - 1)
    for band, (low, high) in enumerate(zip(edges[:-1], edges[1:])):
        matrix[low:high, band] = 1.0 / (high - low)
    return matrix


def spectral_losses(recon: torch.Tensor, target: torch.Tensor, patch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-amplitude L1, phase error) between `recon` and `target`, over the patches and over the
    windows that straddle two patches (half a patch later), so that a step where two decoded
    patches meet costs what its broadband spectrum costs in any spectral estimate.

    The log amplitude is half the log of the power in log-spaced bands (`log_band_matrix`), so that
    the four bins of the delta band weigh as much as the 45 of gamma, plus a floor relative to the
    window's mean power (an absolute floor small enough for EEG's quiet bands makes the loss so
    steep there that it adds noise instead of removing it). The phase error is the squared distance between
    the (cos, sin) of the two phases, weighted by the target's amplitude share of each bin: the
    phase of a bin that holds no power is noise. The unit vectors get no floor of their own: one
    would let a bin whose phase the model cannot tell lower its error by going silent."""
    offsets = [0, patch_size // 2] if recon.shape[-1] >= 2 * patch_size else [0]
    log_terms, phase_terms = [], []
    for offset in offsets:
        spectrum, present = window_spectra(target, patch_size, offset)
        recon_spectrum, _ = window_spectra(recon, patch_size, offset)
        power, recon_power = spectrum.abs().square(), recon_spectrum.abs().square()
        bands = log_band_matrix(power.shape[-1]).to(power.device)
        band_power, recon_band_power = power @ bands, recon_power @ bands
        floor = LOG_FLOOR * band_power.mean(dim=-1, keepdim=True) + 1e-12
        log_ratio = 0.5 * (torch.log(recon_band_power + floor) - torch.log(band_power + floor))
        log_terms.append(_masked_mean(log_ratio.abs(), present))
        unit = spectrum / torch.sqrt(power + UNIT_EPS)
        recon_unit = recon_spectrum / torch.sqrt(recon_power + UNIT_EPS)
        share = power.sqrt() / power.sqrt().sum(dim=-1, keepdim=True).clamp_min(UNIT_EPS)
        phase_terms.append(_masked_mean(((recon_unit - unit).abs().square() * share).sum(dim=-1), present))
    return torch.stack(log_terms).mean(), torch.stack(phase_terms).mean()
