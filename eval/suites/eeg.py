"""EEG in `mmtok eval`: NMSE, Pearson r and relative band-power errors (mmtok.eval.metrics.eeg); DCT
quantisation of each channel's patches as the baseline (mmtok.eval.codecs.baselines). Media: traces and
spectra of a few channels, original against the reconstruction (mmtok.eval.report.eeg_plot).

The reference is the prepared signal in microvolts (the tokenizer's rate, filters and clipping)."""

from __future__ import annotations

from pathlib import Path

import torch

from mmtok.data.eeg_montage import unpack_eeg
from mmtok.eval.codecs.baselines import eeg_curve, eeg_matched
from mmtok.eval.metrics.eeg import mean_band_error, signal_report
from mmtok.eval.suites import Suite


class EEGSuite(Suite):
    modality = "eeg"
    rate_name = "bits per channel-second"
    metrics = {"nmse": False, "pearson_r": True, "band_error_mean": False}
    patch_size: int | None = None  # the DCT baseline's patch: the tokenizer's, else one second

    def configure(self, system) -> None:
        self.patch_size = getattr(getattr(system.model, "config", None), "patch_size", None)

    def _patch(self, info: dict) -> int:
        return self.patch_size or int(info["sample_rate"])

    def reference(self, prepared: torch.Tensor) -> torch.Tensor:
        return unpack_eeg(prepared)[1]

    amount_name = "channel-s"

    def amount(self, reference: torch.Tensor, info: dict) -> float:
        return reference.shape[1] * reference.shape[-1] / info["sample_rate"]

    def rate(self, bits: float, reference: torch.Tensor, info: dict) -> float:
        return bits / (reference.shape[1] * reference.shape[-1] / info["sample_rate"])

    def scores(self, reference: torch.Tensor, reconstruction: torch.Tensor, info: dict) -> dict[str, float]:
        return signal_report(reference, reconstruction, info["sample_rate"])

    @staticmethod
    def dct_error(original, coded, sample_rate: float) -> float:
        """What the DCT baseline's split of a budget minimises: the band-power error."""
        return mean_band_error(original, coded, sample_rate)

    def curve(self, reference: torch.Tensor, info: dict):
        signal = reference.double().numpy()
        return eeg_curve(reference, signal, info["sample_rate"], self._patch(info), self.dct_error)

    def matched(self, reference: torch.Tensor, info: dict, rate: float):
        signal = reference.double().numpy()
        return eeg_matched(reference, signal, info["sample_rate"], self._patch(info), rate, self.dct_error)

    def probes(self, tokenizers: list[tuple[str, object]], data: str, train: str) -> dict[str, dict]:
        """Linear probes (mmtok.eval.probes.eeg) fitted on the labelled trials of `train` and scored on
        those of `data` (both aeon `.ts` files): one on each tokenizer's frozen tokens, one on the raw
        signal's band powers as prepared by the first tokenizer."""
        from mmtok.data.eeg_ts import read_ts
        from mmtok.eval.probes.eeg import band_power_features, linear_probe, token_features

        train_set, test_set = read_ts(train), read_ts(data)
        if not all(train_set.labels) or not all(test_set.labels):
            raise ValueError(f"probes need class labels on every trial of {train} and {data}")
        scores, raw = {}, None
        for name, frozen in tokenizers:
            train_x = frozen.prepare(train_set.recordings).tensor
            test_x = frozen.prepare(test_set.recordings).tensor
            scores[f"{name} tokens"] = linear_probe(
                token_features(frozen, train_x), train_set.labels, token_features(frozen, test_x), test_set.labels
            )
            if raw is None:
                rate = frozen.input_spec.sample_rate
                raw = linear_probe(
                    band_power_features(train_x, rate),
                    train_set.labels,
                    band_power_features(test_x, rate),
                    test_set.labels,
                )
        scores["band powers (raw signal)"] = raw
        return scores

    def write_media(self, folder: Path, stem: str, x: torch.Tensor, info: dict, reference=None) -> dict[str, str]:
        import matplotlib.pyplot as plt

        from mmtok.eval.report.eeg_plot import plot_reconstruction

        names = info.get("channel_names", "").split(",") if info.get("channel_names") else None
        shown = {} if reference is None else {"reconstruction": x[0]}
        original = x[0] if reference is None else reference[0]
        figure = plot_reconstruction(original, shown, int(info["sample_rate"]), names, max_channels=3)
        figure.savefig(folder / f"{stem}.png", dpi=60)
        plt.close(figure)
        return {"trace": f"{stem}.png"}
