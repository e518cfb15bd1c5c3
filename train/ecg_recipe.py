"""Training ECG tokenizers: the EEG recipe (mmtok.train.eeg_recipe: windows of prepared records,
the patch, its log-amplitude spectrum and phase as targets) on ECG records, with the waveform
discriminators at ECG's scale."""

from __future__ import annotations

import dataclasses

from mmtok.train.audio_discriminators import AudioDiscriminator
from mmtok.train.eeg_recipe import EEGLossConfig, EEGRecipe

# scripts/fetch_data.sh fetches them: MIT-BIH record 208 as 30 s WFDB records (train split).
MITDB_TRAIN = "data_cache/ecg/mitdb208/train"


@dataclasses.dataclass
class ECGDataConfig:
    # Folders, globs or files of ECG records (WFDB .hea with their .dat, EDF).
    source: str | list[str] = MITDB_TRAIN
    segment_patches: int = 20  # 4 s windows at the default 0.2 s patches: a few beats
    channels: int = 12  # leads per window (random subsets of larger sets; fewer are padded as missing)


class ECGRecipe(EEGRecipe):
    modality = "ecg"
    data_config_class = ECGDataConfig
    loss_config_class = EEGLossConfig

    def build_discriminator(self):
        # Periods and STFTs at 250 Hz: a QRS complex spans about 25 samples.
        return AudioDiscriminator(periods=(2, 3, 5, 7), fft_sizes=(128, 64), channels=self.terms.discriminator_channels)
