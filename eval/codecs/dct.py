"""DCT quantisation of each channel's patches, the EEG and ECG baseline: a fixed split of a bit
budget into kept coefficients x bits each, and the split whose error on given signals is lowest."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import scipy.fft
import torch

from mmtok.eval.metrics.eeg import mean_band_error


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
