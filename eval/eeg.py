"""What EEG tokens keep of the signal: NMSE, Pearson r, relative band-power error per band, and
a classical baseline at equal bits (DCT quantisation of each patch).

Signals are arrays or tensors (trials, channels, samples) in microvolts, original first; both
arguments of a metric have one shape. Band powers come from scipy's Welch estimate (1 s
segments), summed over each band's bins.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import scipy.fft
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


@dataclasses.dataclass
class DCTCodec:
    """Each patch of one channel (patch_size samples): orthonormal DCT-II, the first `kept`
    coefficients quantised uniformly with `bits` bits each over a per-coefficient range fitted on
    training patches (no side information per patch), the rest zeroed. kept * bits bits per patch."""

    patch_size: int
    kept: int
    bits: int
    ranges: np.ndarray  # (kept,): coefficient i is clipped to [-ranges[i], ranges[i]]

    @property
    def bits_per_patch(self) -> int:
        return self.kept * self.bits

    @classmethod
    def fit(cls, signals, patch_size: int, kept: int, bits: int, percentile: float = 99.5) -> DCTCodec:
        coefficients = cls._coefficients(signals, patch_size)[..., :kept]
        ranges = np.percentile(np.abs(coefficients).reshape(-1, kept), percentile, axis=0)
        return cls(patch_size, kept, bits, np.maximum(ranges, 1e-9))

    @staticmethod
    def _coefficients(signals, patch_size: int) -> np.ndarray:
        x = signals.detach().double().cpu().numpy() if torch.is_tensor(signals) else np.asarray(signals, np.float64)
        count = x.shape[-1] // patch_size
        patches = x[..., : count * patch_size].reshape(*x.shape[:-1], count, patch_size)
        return scipy.fft.dct(patches, type=2, norm="ortho", axis=-1)

    def __call__(self, signals) -> np.ndarray:
        """(..., samples) -> the coded signal (..., whole patches * patch_size)."""
        coefficients = self._coefficients(signals, self.patch_size)
        levels = 2**self.bits
        step = 2 * self.ranges / levels
        kept = np.clip(coefficients[..., : self.kept], -self.ranges, self.ranges - 1e-9 * self.ranges)
        indices = np.floor((kept + self.ranges) / step)  # 0 .. levels - 1
        coded = np.zeros_like(coefficients)
        coded[..., : self.kept] = (indices + 0.5) * step - self.ranges  # midpoints of the cells
        patches = scipy.fft.idct(coded, type=2, norm="ortho", axis=-1)
        return patches.reshape(*patches.shape[:-2], -1)


def mean_band_error(x, y, sample_rate: float) -> float:
    return float(np.mean(list(band_power_error(x, y, sample_rate).values())))


def best_dct_codec(
    train_signals, patch_size: int, bits_per_patch: int, sample_rate: float, error=mean_band_error
) -> DCTCodec:
    """The DCT codec of at most `bits_per_patch` bits (every split into kept coefficients x bits
    each) whose `error(original, coded, sample_rate)` on the training signals is lowest (by
    default the mean band-power error): the baseline's best shot."""
    train = np.asarray(train_signals, np.float64)
    usable = train[..., : train.shape[-1] // patch_size * patch_size]
    best, best_error = None, np.inf
    for bits, kept in itertools.product(range(1, 9), range(1, patch_size + 1)):
        if bits * kept > bits_per_patch or (kept < patch_size and bits * (kept + 1) <= bits_per_patch):
            continue  # only the largest `kept` that fits the budget at this many bits
        codec = DCTCodec.fit(usable, patch_size, kept, bits)
        value = error(usable, codec(usable), sample_rate)
        if value < best_error:
            best, best_error = codec, value
    if best is None:
        raise ValueError(f"no DCT codec fits {bits_per_patch} bits per patch")
    return best
