"""Pictures of EEG reconstructions: traces and spectra of a few channels, original against
reconstructions (the tokenizer's, a baseline's)."""

from __future__ import annotations

import numpy as np
import torch


def _numpy(x) -> np.ndarray:
    return x.detach().float().cpu().numpy() if torch.is_tensor(x) else np.asarray(x, dtype=np.float64)


def plot_reconstruction(
    original,
    reconstructions,
    sample_rate: int,
    channel_names: list[str] | None = None,
    *,
    max_channels: int = 4,
    title: str = "",
):
    """original (C, T) microvolts; reconstructions: one (C, T') array or {label: array}. One row per
    channel: traces on the left, Welch power spectra (log scale) on the right. -> a matplotlib Figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.signal import welch

    if not isinstance(reconstructions, dict):
        reconstructions = {"reconstruction": reconstructions}
    original = _numpy(original)
    reconstructions = {label: _numpy(r) for label, r in reconstructions.items()}
    length = min([original.shape[-1], *(r.shape[-1] for r in reconstructions.values())])
    rows = min(max_channels, original.shape[0])
    figure, axes = plt.subplots(rows, 2, figsize=(12, 2.2 * rows + 0.6), squeeze=False)
    seconds = np.arange(length) / sample_rate
    for row in range(rows):
        name = channel_names[row] if channel_names else f"channel {row + 1}"
        traces, spectra = axes[row]
        series = {"original": original[row, :length], **{k: v[row, :length] for k, v in reconstructions.items()}}
        for i, (label, signal) in enumerate(series.items()):
            width = 1.6 if i == 0 else 1.0
            traces.plot(seconds, signal, label=label, linewidth=width, color="black" if i == 0 else None)
            freqs, power = welch(np.nan_to_num(signal), fs=sample_rate, nperseg=min(length, sample_rate))
            spectra.semilogy(freqs, power + 1e-12, label=label, linewidth=width, color="black" if i == 0 else None)
        traces.set_ylabel(f"{name}\nµV")
        spectra.set_ylabel("µV²/Hz")
    axes[-1, 0].set_xlabel("seconds")
    axes[-1, 1].set_xlabel("Hz")
    axes[0, 0].legend(fontsize=8, loc="upper right")
    axes[0, 1].legend(fontsize=8, loc="upper right")
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure
