"""EEG in `mmtok eval`: NMSE, Pearson r and relative band-power errors (mmtok.eval.eeg); DCT
quantisation of each channel's patches as the baseline (mmtok.eval.baselines). Media: traces and
spectra of a few channels, original against the reconstruction (mmtok.eval.eeg_plot).

The reference is the prepared signal in microvolts (the tokenizer's rate, filters and clipping)."""

from __future__ import annotations

from pathlib import Path

import torch

from mmtok.data.eeg_montage import unpack_eeg
from mmtok.eval.baselines import eeg_curve, eeg_matched
from mmtok.eval.eeg import signal_report
from mmtok.eval.suites import Suite


class EEGSuite(Suite):
    modality = "eeg"
    rate_name = "bits per channel-second"
    metrics = {"nmse": False, "pearson_r": True, "band_error_mean": False}
    patch_size: int | None = None  # the DCT baseline's patch: the tokenizer's, else one second

    def configure(self, frozen) -> None:
        self.patch_size = getattr(frozen.model.config, "patch_size", None)

    def _patch(self, info: dict) -> int:
        return self.patch_size or int(info["sample_rate"])

    def reference(self, prepared: torch.Tensor) -> torch.Tensor:
        return unpack_eeg(prepared)[1]

    def rate(self, bits: float, reference: torch.Tensor, info: dict) -> float:
        return bits / (reference.shape[1] * reference.shape[-1] / info["sample_rate"])

    def scores(self, reference: torch.Tensor, reconstruction: torch.Tensor, info: dict) -> dict[str, float]:
        return signal_report(reference, reconstruction, info["sample_rate"])

    def curve(self, reference: torch.Tensor, info: dict):
        signal = reference.double().numpy()
        return eeg_curve(reference, signal, info["sample_rate"], self._patch(info))

    def matched(self, reference: torch.Tensor, info: dict, rate: float):
        signal = reference.double().numpy()
        return eeg_matched(reference, signal, info["sample_rate"], self._patch(info), rate)

    def write_media(self, folder: Path, stem: str, x: torch.Tensor, info: dict, reference=None) -> dict[str, str]:
        import matplotlib.pyplot as plt

        from mmtok.eval.eeg_plot import plot_reconstruction

        names = info.get("channel_names", "").split(",") if info.get("channel_names") else None
        shown = {} if reference is None else {"reconstruction": x[0]}
        original = x[0] if reference is None else reference[0]
        figure = plot_reconstruction(original, shown, int(info["sample_rate"]), names, max_channels=3)
        figure.savefig(folder / f"{stem}.png", dpi=60)
        plt.close(figure)
        return {"trace": f"{stem}.png"}
