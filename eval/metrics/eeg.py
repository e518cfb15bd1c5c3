"""What EEG tokens keep of the signal: NMSE, Pearson r, relative band-power error per band (the
classical baseline at equal bits, DCT quantisation of each patch, is mmtok.eval.codecs.dct).

Signals are arrays or tensors (trials, channels, samples) in microvolts, original first; both
arguments of a metric have one shape. Band powers come from scipy's Welch estimate (1 s
segments), summed over each band's bins.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.signal import welch

BANDS = {"delta": (0.5, 4.0), "theta": (4.0, 8.0), "alpha": (8.0, 13.0), "beta": (13.0, 30.0), "gamma": (30.0, 75.0)}
_POWER_FLOOR = 1e-12  # µV²: a channel with less power in a band counts as silent there


def _pair(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = (v.detach().double().cpu().numpy() if torch.is_tensor(v) else np.asarray(v, np.float64) for v in (x, y))
    if x.shape != y.shape or x.ndim != 3:
        raise ValueError(f"expected two (trials, channels, samples) signals of one shape, got {x.shape} and {y.shape}")
    return x, y


def nmse(x, y) -> float:
    """Squared error over the original's energy, per trial (all channels), averaged over trials."""
    x, y = _pair(x, y)
    return float(np.mean(((y - x) ** 2).sum(axis=(1, 2)) / np.maximum((x**2).sum(axis=(1, 2)), _POWER_FLOOR)))


def pearson_r(x, y) -> float:
    """Correlation of each channel's reconstruction with its original, averaged over channels and trials."""
    x, y = _pair(x, y)
    x = x - x.mean(axis=-1, keepdims=True)
    y = y - y.mean(axis=-1, keepdims=True)
    denominator = np.sqrt((x**2).sum(-1) * (y**2).sum(-1))
    return float(np.mean((x * y).sum(-1) / np.maximum(denominator, _POWER_FLOOR)))


def band_powers(x, sample_rate: float, bands: dict[str, tuple[float, float]] = BANDS) -> np.ndarray:
    """(..., samples) -> (..., bands): Welch power (1 s segments) summed over each band's bins [low, high)."""
    x = x.detach().double().cpu().numpy() if torch.is_tensor(x) else np.asarray(x, np.float64)
    freqs, power = welch(x, fs=sample_rate, nperseg=min(x.shape[-1], int(sample_rate)), axis=-1)
    return np.stack([power[..., (freqs >= low) & (freqs < high)].sum(-1) for low, high in bands.values()], axis=-1)


def band_power_error(x, y, sample_rate: float, bands: dict[str, tuple[float, float]] = BANDS) -> dict[str, float]:
    """Per band: mean over trials and channels of |P(reconstruction) - P(original)| / P(original)."""
    x, y = _pair(x, y)
    original, reconstructed = band_powers(x, sample_rate, bands), band_powers(y, sample_rate, bands)
    relative = np.abs(reconstructed - original) / np.maximum(original, _POWER_FLOOR)
    return {band: float(relative[..., i].mean()) for i, band in enumerate(bands)}


def signal_report(x, y, sample_rate: float) -> dict[str, float]:
    """NMSE, Pearson r and the band-power errors (band_error_<band>, and their mean) in one dict."""
    errors = band_power_error(x, y, sample_rate)
    report = {"nmse": nmse(x, y), "pearson_r": pearson_r(x, y)}
    report.update({f"band_error_{band}": value for band, value in errors.items()})
    report["band_error_mean"] = float(np.mean(list(errors.values())))
    return report


def mean_band_error(x, y, sample_rate: float) -> float:
    return float(np.mean(list(band_power_error(x, y, sample_rate).values())))
