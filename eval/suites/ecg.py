"""ECG in `mmtok eval`: EEG's suite (mmtok.eval.suites.eeg: NMSE, Pearson r, DCT quantisation of
each lead's patches at equal bits, traces of the reconstruction) with ECG's headline metrics:
NMSE, Pearson r and PRD (percent root-mean-square difference, the ECG-compression literature's
figure, 100 * sqrt(NMSE) per record). Band-power errors are reported but are EEG's bands, so
they are not headlines. No beat-classification probe: the records mmtok can get offline carry no
beat labels (MIT-BIH's annotation files do not ship with scipy's copy of record 208)."""

from __future__ import annotations

import math

import torch

from mmtok.eval.metrics.eeg import nmse
from mmtok.eval.suites.eeg import EEGSuite


class ECGSuite(EEGSuite):
    modality = "ecg"
    rate_name = "bits per lead-second"
    metrics = {"nmse": False, "pearson_r": True, "prd": False}
    amount_name = "lead-s"

    def scores(self, reference: torch.Tensor, reconstruction: torch.Tensor, info: dict) -> dict[str, float]:
        scores = super().scores(reference, reconstruction, info)
        return {**scores, "prd": 100 * math.sqrt(scores["nmse"])}

    @staticmethod
    def dct_error(original, coded, sample_rate: float) -> float:
        """The DCT baseline splits each budget for the lowest NMSE, ECG's headline."""
        return nmse(original, coded)

    def probes(self, tokenizers, data: str, train: str) -> dict[str, dict]:
        raise ValueError("ECG token probes need beat labels, which no record mmtok reads carries yet")
