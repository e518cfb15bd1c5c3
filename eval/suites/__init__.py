"""What `mmtok eval` does differently per modality, behind one small interface (`Suite`): the
reference signal and rate of an item, its per-item scores, the classical codec baselines, and the
media files the report shows. The harness (mmtok.eval.harness) is the same for every modality."""

from __future__ import annotations

from pathlib import Path

import torch

from mmtok.eval.codecs.baselines import Coded


class Suite:
    modality = ""
    rate_name = ""  # the unit of `rate`, e.g. "bpp"
    # The headline metrics, in table order, each with whether higher is better; plots draw these.
    metrics: dict[str, bool] = {}
    # Whether scores use the items' transcripts (mmtok.eval.metrics.transcripts), which the harness then reads
    # into `transcripts` ({stem: words}) from --transcripts or the data folder.
    uses_transcripts = False

    def __init__(self, lpips_weights: str | None = None, fid_weights: str | None = None):
        self.lpips_weights, self.fid_weights = lpips_weights, fid_weights
        self.transcripts: dict[str, str] = {}

    def configure(self, system) -> None:
        """Takes what the baselines need from the first system (EEG: its tokenizer's patch length)."""

    def reference(self, prepared: torch.Tensor) -> torch.Tensor:
        """A prepared batch -> what reconstructions are compared with (same layout as decode's)."""
        return prepared

    amount_name = ""  # what `amount` measures, for throughput: "Mpx", "s of audio", ...

    def rate(self, bits: float, reference: torch.Tensor, info: dict) -> float:
        raise NotImplementedError

    def amount(self, reference: torch.Tensor, info: dict) -> float:
        """How much media the item is, in `amount_name` units (throughput per second of work)."""
        raise NotImplementedError

    def scores(self, reference: torch.Tensor, reconstruction: torch.Tensor, info: dict) -> dict[str, float]:
        raise NotImplementedError

    def derived(self, summary: dict[str, dict]) -> dict[str, dict]:
        """Figures of a whole set computed from its means (images: the colour kept), as mean_ci entries."""
        return {}

    def reference_scores(self, reference: torch.Tensor, info: dict) -> dict[str, float]:
        """Scores of the original itself, for metrics that need no reference (DNSMOS): the ceiling."""
        return {}

    def dataset_metric(self):
        """None, or an accumulator with update(reference, reconstruction) and compute() -> {name: value}
        for metrics of a whole set (FID)."""
        return None

    def curve(self, reference: torch.Tensor, info: dict) -> list[Coded]:
        return []

    def matched(self, reference: torch.Tensor, info: dict, rate: float) -> list[Coded]:
        return []

    def probes(self, tokenizers: list[tuple[str, object]], data: str, train: str) -> dict[str, dict]:
        """Linear probes on frozen tokens against labelled training items (EEG only so far)."""
        raise ValueError(f"token probes are not available for {self.modality}")

    def write_media(self, folder: Path, stem: str, x: torch.Tensor, info: dict, reference=None) -> dict[str, str]:
        """Files that show one item (paths relative to `folder`), keyed by kind: "image", "audio", ...;
        `reference`, when given, is the original the picture may draw beside `x`."""
        return {}


def suite_for(modality: str, **options) -> Suite:
    """The modality table's suite for `modality` (mmtok.modalities), built with `options`."""
    from mmtok.modalities import modality as modality_entry

    return modality_entry(modality).suite_class()(**options)
