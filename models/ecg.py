"""ECG tokenizer: the EEG tokenizer's network (mmtok.models.eeg) on ECG leads. One token per
patch of one lead (0.2 s at 250 Hz by default: four or five per heartbeat), any set of leads
(each lead placed by its direction, mmtok.data.ecg_io), any duration; ids (B, leads, patches,
num_codebooks). Patches are fixed windows rather than beats: the ids need no beat detector, and
a beat's shape is spread over a few tokens whose attention reaches back two beats.

What differs from EEG is the input path (WFDB and EDF records, lead names and directions, a
0.5-100 Hz band) and the scale: millivolts, not tens of microvolts.
"""

from __future__ import annotations

import dataclasses

from mmtok.data.ecg_io import ECGInputSpec
from mmtok.models.eeg import EEGTokenizer, EEGTokenizerConfig
from mmtok.tokenizer import QuantizerConfig


def ecg_residual_vq() -> QuantizerConfig:
    """4 residual codebooks of 1,024 cosine codes: 40 bits per 0.2 s patch, 200 bits per lead-second."""
    options = {"codebook_size": 1024, "num_codebooks": 4, "codebook_dim": 8, "metric": "cosine"}
    return QuantizerConfig(kind="rvq", options=options)


@dataclasses.dataclass
class ECGTokenizerConfig(EEGTokenizerConfig):
    sample_rate: int = 250
    band_pass: list[float | None] | None = dataclasses.field(default_factory=lambda: [0.5, 100.0])
    notch_hz: list[float] = dataclasses.field(default_factory=list)
    clip_uv: float | None = 10_000.0
    signal_scale_uv: float = 1000.0  # the network sees millivolts
    patch_size: int = 50
    crossfade: int = 10
    width: int = 96
    depth: int = 3
    context_patches: int = 8  # 1.6 s: the patch and about two beats before it
    conv_kernels: list[int] = dataclasses.field(default_factory=lambda: [15, 9, 5])
    latent_dim: int = 16
    quantizer: QuantizerConfig = dataclasses.field(default_factory=ecg_residual_vq)


class ECGTokenizer(EEGTokenizer):
    family = "ecg"
    modality = "ecg"
    config_class = ECGTokenizerConfig
    token_axes = ("leads", "patches")
    window_patches = 1280  # 256 s of patches per step of a long record
    rate_channel_counts = (1, 12)

    @classmethod
    def input_spec_for(cls, config: ECGTokenizerConfig) -> ECGInputSpec:
        return ECGInputSpec(config.sample_rate, config.band_pass, config.notch_hz, config.clip_uv)
