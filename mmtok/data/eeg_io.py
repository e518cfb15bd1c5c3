"""The one input path for EEG: every recording is prepared by `EEGInputSpec.prepare_recording`,
for training (`EEGDataset`), `FrozenTokenizer.encode`, `mmtok tokenize` and eval alike:

1. channels whose type (an mne Raw's, or MNE's reading of EDF label prefixes) or name says they
   are not EEG (ECG, EOG, triggers, ...) are dropped, and counted;
2. names are normalised to the 10-05 spelling ("EEG Fp1-REF" -> "Fp1") and placed on the
   template montage (mmtok.data.eeg_montage; unknown names: NaN, the model's fallback);
3. samples go to microvolts, each channel's mean is removed (a high-pass removes it over a long
   recording, but a 1 s trial is shorter than the filter), then they are resampled to
   `sample_rate` (MNE's polyphase resampler: 128 or 256 Hz -> 200 Hz);
4. MNE's FIR band-pass and notch filters are applied at that rate (notches at or above Nyquist
   are skipped; recordings shorter than the high-pass filter, 33 s at 0.1 Hz, are not
   high-passed: see `band_filter`);
5. samples beyond +-`clip_uv` are clipped, and counted.

The result is packed with the electrode positions (`pack_eeg`): (1, channels, 3 + samples). Per
recording, `info` records what was done, channel names included, and `to_media` gives
`EEGRecording`s back with those names.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from mmtok.data.eeg_montage import (
    MONTAGE,
    channel_positions,
    is_eeg_name,
    normalise_channel_name,
    pack_eeg,
    unpack_eeg,
)
from mmtok.data.eeg_read import EEG_FILE_SUFFIXES, EEGDecodeError, EEGRecording, read_recordings
from mmtok.data.spec import InputSpec, Prepared, stack_prepared

ENCODED = (str, Path, bytes, bytearray, memoryview)


def resample(data: np.ndarray, rate: float, target: int) -> np.ndarray:
    """(channels, samples) from `rate` to `target` Hz with MNE's polyphase resampler."""
    import mne

    if rate == target:
        return data
    ratio = Fraction(target / rate).limit_denominator(1000)
    return mne.filter.resample(data, up=ratio.numerator, down=ratio.denominator, method="polyphase", verbose=False)


@functools.cache
def high_pass_length(rate: int, low: float) -> int:
    """Samples of MNE's default FIR high-pass at `low` Hz (6,601 at 0.1 Hz and 200 Hz: 33 s)."""
    import mne

    return len(mne.filter.create_filter(None, rate, low, None, verbose=False))


def band_filter(data: np.ndarray, rate: int, band: list[float | None] | None, notches: list[float]) -> tuple:
    """MNE's zero-phase FIR band-pass (`band` = [low, high] Hz, either None) and notch filters.
    -> (filtered data, whether the high-pass was applied).

    A recording shorter than the high-pass filter is not high-passed: on a 1-4 s trial a 0.1 Hz
    FIR distorts a 10 Hz rhythm by a third of its amplitude (measured), while removing the mean,
    which the input path does first, is all a 0.1 Hz high-pass does over a few seconds."""
    import mne

    low, high = band if band is not None else (None, None)
    high = high if high is None or high < rate / 2 else None  # nothing above Nyquist to cut
    if low is not None and data.shape[-1] < high_pass_length(rate, low):
        low = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MNE's notes on filter lengths and transition bands
        if low is not None or high is not None:
            data = mne.filter.filter_data(data, rate, low, high, verbose=False)
        notches = [f for f in notches if f < rate / 2]
        if notches:
            data = mne.filter.notch_filter(data, rate, notches, verbose=False)
    return data, low is not None


@dataclasses.dataclass
class EEGInputSpec(InputSpec):
    """How recordings are prepared for one EEG tokenizer (see the module docstring)."""

    modality: ClassVar[str] = "eeg"
    reads_paths: ClassVar[bool] = True  # BrainVision and EEGLAB keep their samples next to the header
    info_fields: ClassVar[dict[str, type]] = {
        "channels": int,
        "num_samples": int,
        "sample_rate": int,
        "duration": float,
        "source_sample_rate": float,
        "source_channels": int,
        "dropped_channels": int,  # not EEG by their type (as the file or MNE types them) or their names
        "unknown_positions": int,  # channels that take the learned fallback embedding
        "clipped_samples": int,
        "high_passed": int,  # 1: band_pass[0] applied; 0: the recording is shorter than that filter
        "channel_names": str,  # comma-separated, in the order of the ids' channel axis
    }

    sample_rate: int = 200
    band_pass: list[float | None] | None = dataclasses.field(default_factory=lambda: [0.1, 75.0])
    notch_hz: list[float] = dataclasses.field(default_factory=lambda: [50.0])
    clip_uv: float | None = 500.0

    # What a sibling signal (ECG: mmtok.data.ecg_io) changes: which channels it keeps, how it
    # names them and where they sit, and how files are read.
    signal_name: ClassVar[str] = "EEG"
    channel_types: ClassVar[tuple[str, ...]] = ("eeg",)  # of an mne Raw's channels, MNE's types kept
    file_suffixes: ClassVar[tuple[str, ...]] = EEG_FILE_SUFFIXES  # what `read` reads

    def keeps_channel(self, name: str) -> bool:
        return is_eeg_name(name)

    def channel_name(self, name: str) -> str:
        return normalise_channel_name(name)

    def positions(self, names: list[str]) -> np.ndarray:
        """(channels, 3) metres, NaN where a name has no place."""
        return channel_positions(names)

    def read(self, source: Any) -> list[EEGRecording]:
        return read_recordings(source)

    def prepare_recording(self, recording: EEGRecording) -> Prepared:
        """One recording -> (1, channels, 3 + samples) and what was done to it."""
        keep = [i for i, name in enumerate(recording.channel_names) if self.keeps_channel(name)]
        if not keep:
            raise EEGDecodeError(f"no {self.signal_name} channels among {recording.channel_names}")
        names = [self.channel_name(recording.channel_names[i]) for i in keep]
        data = recording.microvolts()[keep]
        if not np.isfinite(data).all():
            raise EEGDecodeError("the recording holds NaN or infinite samples")
        data = data - data.mean(axis=1, keepdims=True)
        data = resample(data, recording.sample_rate, self.sample_rate)
        data, high_passed = band_filter(data, self.sample_rate, self.band_pass, self.notch_hz)
        clipped = 0
        if self.clip_uv is not None:
            clipped = int((np.abs(data) > self.clip_uv).sum())
            data = np.clip(data, -self.clip_uv, self.clip_uv)
        positions = self.positions(names)
        x = pack_eeg(torch.from_numpy(data).float(), torch.from_numpy(positions).float())
        info = {
            "channels": len(names),
            "num_samples": data.shape[1],
            "sample_rate": self.sample_rate,
            "duration": data.shape[1] / self.sample_rate,
            "source_sample_rate": float(recording.sample_rate),
            "source_channels": len(recording.channel_names) + recording.dropped_channels,
            "dropped_channels": len(recording.channel_names) - len(keep) + recording.dropped_channels,
            "unknown_positions": int(np.isnan(positions).any(axis=1).sum()),
            "clipped_samples": clipped,
            "high_passed": int(high_passed),
            "channel_names": ",".join(names),
        }
        return Prepared(x[None], [info])

    def prepare(self, media: Any) -> Prepared:
        """A path or the bytes of an EDF/BDF/FIF/BrainVision/EEGLAB/.npz/.ts file, an
        `EEGRecording`, an mne Raw, or a list of them -> (B, channels, 3 + samples) and each
        recording's info. A `.ts` file gives all its trials; recordings of one batch must end up
        with one shape. A float tensor in the packed layout is taken as prepared."""
        if torch.is_tensor(media):
            return self._prepared_tensor(media)
        items = media if isinstance(media, (list, tuple)) else [media]
        if not items:
            raise ValueError("no EEG recordings given")
        prepared = [self.prepare_recording(r) for item in items for r in self._recordings(item)]
        return stack_prepared(prepared, "EEG recordings")

    def _recordings(self, item: Any) -> list[EEGRecording]:
        if isinstance(item, EEGRecording):
            return [item]
        if isinstance(item, ENCODED):
            return self.read(item)
        if hasattr(item, "info") and hasattr(item, "get_data"):  # an mne Raw
            return [EEGRecording.from_raw(item, self.channel_types)]
        raise TypeError(
            f"{self.signal_name} media are paths, file bytes, EEGRecording(data, channel_names, sample_rate) "
            f"or mne Raw, got {type(item).__name__}"
        )

    def _prepared_tensor(self, x: torch.Tensor) -> Prepared:
        if not x.is_floating_point() or x.ndim != 3:
            raise ValueError(
                f"{self.signal_name} tensors must be float (B, channels, 3 + samples), got {x.dtype} {tuple(x.shape)}"
            )
        positions, signal = unpack_eeg(x)
        info = {
            "channels": x.shape[1],
            "num_samples": signal.shape[-1],
            "sample_rate": self.sample_rate,
            "duration": signal.shape[-1] / self.sample_rate,
            "source_sample_rate": float(self.sample_rate),
            "source_channels": x.shape[1],
            "dropped_channels": 0,
            "clipped_samples": 0,
            "high_passed": 0,
            "channel_names": "",
        }
        unknown = positions.isnan().any(-1).sum(-1).tolist()
        return Prepared(x, [{**info, "unknown_positions": int(n)} for n in unknown])

    def to_media(self, x: torch.Tensor, info: list[dict] | None = None) -> list[EEGRecording]:
        """Decoded (B, channels, samples) microvolts -> one EEGRecording each, named as `info` says."""
        x = x.detach().float().cpu().numpy()
        recordings = []
        for i, signal in enumerate(x):
            names = (info[i]["channel_names"].split(",") if info and info[i].get("channel_names") else []) or [
                f"ch{c + 1}" for c in range(signal.shape[0])
            ]
            recordings.append(EEGRecording(signal, names, self.sample_rate, "uV"))
        return recordings

    def to_json(self) -> dict:
        steps = (
            "non-EEG channels dropped by type and name; names normalised to 10-05; positions from MNE's "
            f"{MONTAGE} montage; microvolts; channel means removed; MNE polyphase resampling; "
            "MNE FIR band-pass (no high-pass on recordings shorter than its filter) and notch; clipping at +-clip_uv"
        )
        layout = "(channels, 3 + samples): xyz in metres, then the samples"
        return {**super().to_json(), "units": "uV", "layout": layout, "preparation": steps}
