"""EEG training targets: the patch itself (masked L1/L2), its log-amplitude spectrum and its phase
(as cos/sin), each patch's spectrum taken with one real FFT over the patch (LaBraM trains its
tokenizer to predict a patch's Fourier amplitude and phase; here the same targets are read off
the reconstructed patch, so the one signal `decode` returns carries them).

Signals are (B, channels, samples) in network units with NaN marking missing samples in the
target; every loss averages over present patches only.
"""

from __future__ import annotations

import torch

AMPLITUDE_FLOOR = 1e-2  # network units (microvolts / signal_scale_uv); keeps log and phase finite


def _masked_mean(values: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Mean of `values` (..., N[, more]) over the positions where `present` (..., N) is True."""
    while present.ndim < values.ndim:
        present = present[..., None]
    weight = present.expand_as(values).to(values.dtype)
    return (values * weight).sum() / weight.sum().clamp_min(1.0)


def time_loss(recon: torch.Tensor, target: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """Mean absolute ("l1") or squared ("l2") error over the target's present samples."""
    present = ~target.isnan()
    error = recon - torch.nan_to_num(target)
    return _masked_mean(error.abs() if kind == "l1" else error.square(), present)


def patch_spectra(signal: torch.Tensor, patch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, N * P) -> complex spectra (B, C, N, P // 2 + 1) and which patches are present (B, C, N)."""
    patches = signal.unflatten(-1, (signal.shape[-1] // patch_size, patch_size)).float()
    present = ~patches.isnan().any(dim=-1)
    return torch.fft.rfft(torch.nan_to_num(patches), norm="ortho"), present


def spectral_losses(recon: torch.Tensor, target: torch.Tensor, patch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-amplitude L1, phase error) between the patches of `recon` and `target`.

    The phase error is the squared distance between the (cos, sin) of the two phases, weighted per
    patch by the target's amplitude share of each bin: the phase of a bin that holds no power is
    noise, not something a tokenizer should spend bits on."""
    spectrum, present = patch_spectra(target, patch_size)
    recon_spectrum, _ = patch_spectra(recon, patch_size)
    amplitude, recon_amplitude = spectrum.abs(), recon_spectrum.abs()
    log_error = (torch.log(recon_amplitude + AMPLITUDE_FLOOR) - torch.log(amplitude + AMPLITUDE_FLOOR)).abs()
    unit = spectrum / torch.sqrt(amplitude.square() + AMPLITUDE_FLOOR**2)
    recon_unit = recon_spectrum / torch.sqrt(recon_amplitude.square() + AMPLITUDE_FLOOR**2)
    share = amplitude / amplitude.sum(dim=-1, keepdim=True).clamp_min(AMPLITUDE_FLOOR)
    phase_error = ((recon_unit - unit).abs().square() * share).sum(dim=-1)
    return _masked_mean(log_error, present), _masked_mean(phase_error, present)
