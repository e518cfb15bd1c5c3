"""Reading EEG recordings: MNE's readers for EDF, BDF, FIF, BrainVision and EEGLAB, numpy
archives, aeon's `.ts` trial files (mmtok.data.eeg_ts), and arrays with their channel names and
sampling rate. Everything comes out as `EEGRecording`s; the input spec (mmtok.data.eeg_io)
prepares them. A source that gives no usable samples raises `EEGDecodeError` naming it and why.
"""

from __future__ import annotations

import dataclasses
import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np

UNITS = {"V": 1e6, "mV": 1e3, "uV": 1.0, "µV": 1.0}  # factor to microvolts
# Single-file formats MNE reads from bytes (mmtok tokenize hands items over as bytes).
_MNE_FILE_READERS = {".edf": "read_raw_edf", ".bdf": "read_raw_bdf", ".fif": "read_raw_fif"}
# Formats whose data sit in companion files next to the header: read from a path only.
_MNE_PATH_READERS = {".vhdr": "read_raw_brainvision", ".set": "read_raw_eeglab"}
EEG_FILE_SUFFIXES = (*_MNE_FILE_READERS, *_MNE_PATH_READERS, ".npz", ".ts")


class EEGDecodeError(ValueError):
    """A source that does not decode to EEG samples; the message names the source and the reason."""


@dataclasses.dataclass
class EEGRecording:
    """Samples (channels, samples) with a name per channel, the sampling rate and their unit."""

    data: np.ndarray
    channel_names: list[str]
    sample_rate: float
    unit: str = "uV"  # "V", "mV" or "uV"

    def __post_init__(self):
        self.data = np.asarray(self.data)
        if self.data.ndim != 2:
            raise ValueError(f"EEG data must be (channels, samples), got shape {self.data.shape}")
        if len(self.channel_names) != self.data.shape[0]:
            raise ValueError(f"{len(self.channel_names)} channel names for {self.data.shape[0]} channels")
        if not self.sample_rate > 0:
            raise ValueError(f"sample_rate must be positive, got {self.sample_rate}")
        if self.unit not in UNITS:
            raise ValueError(f"unit must be one of {sorted(UNITS)}, got {self.unit!r}")

    def microvolts(self) -> np.ndarray:
        return self.data.astype(np.float64) * UNITS[self.unit]

    def to_raw(self):
        """An mne.io.RawArray (volts, channel types eeg)."""
        import mne

        info = mne.create_info(list(self.channel_names), float(self.sample_rate), "eeg")
        return mne.io.RawArray(self.microvolts() * 1e-6, info, verbose=False)

    @classmethod
    def from_raw(cls, raw) -> EEGRecording:
        """The EEG channels of an mne Raw (others, such as ECG and stim, are left out)."""
        picks = raw.copy().pick("eeg", exclude=()).load_data()
        return cls(picks.get_data(), list(picks.ch_names), float(raw.info["sfreq"]), "V")


def _suffix(name: str) -> str:
    return Path(name.lower()).suffix


def _sniff(data: bytes) -> str | None:
    """A suffix for encoded bytes without a name, from their first bytes."""
    if data[:8] == b"0       ":
        return ".edf"
    if data[:8] == b"\xffBIOSEMI":
        return ".bdf"
    if data[:4] == b"PK\x03\x04":
        return ".npz"
    if data[:4] == b"\x00\x00\x00\x64":  # FIFF_FILE_ID, the first tag of every FIF file
        return ".fif"
    head = data[:4096].lstrip()
    if head[:1] in (b"#", b"@"):
        return ".ts"
    return None


def _read_mne(reader: str, source: Any) -> EEGRecording:
    import mne

    options = {"infer_types": True} if reader in ("read_raw_edf", "read_raw_bdf") else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MNE warns about header quirks it has already handled
        raw = getattr(mne.io, reader)(source, preload=True, verbose="error", **options)
    return EEGRecording.from_raw(raw)


def _read_npz(data: bytes) -> EEGRecording:
    """An .npz with `data` (channels, samples), `channel_names` and `sample_rate` (and optional `unit`)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        missing = [key for key in ("data", "channel_names", "sample_rate") if key not in archive]
        if missing:
            raise ValueError(f"the .npz misses {missing} (it needs data, channel_names, sample_rate)")
        unit = str(archive["unit"]) if "unit" in archive else "uV"
        names = [str(n) for n in archive["channel_names"]]
        return EEGRecording(archive["data"], names, float(archive["sample_rate"]), unit)


def read_recordings(source: str | Path | bytes, name: str | None = None) -> list[EEGRecording]:
    """Every recording in a file (aeon `.ts` files hold many trials; other formats one).

    `source` is a path or the file's bytes (`name`, when given, says where they came from and its
    suffix picks the reader; otherwise the bytes are sniffed)."""
    path = None
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        label = name or f"<{len(data)} bytes of EEG>"
        suffix = _suffix(name) if name else _sniff(data)
    else:
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"EEG file {path} does not exist")
        label, suffix, data = str(path), _suffix(path.name), None
    if suffix not in EEG_FILE_SUFFIXES:
        raise EEGDecodeError(f"cannot read EEG from {label}: unknown format (readable: {', '.join(EEG_FILE_SUFFIXES)})")
    if suffix in _MNE_PATH_READERS and path is None:
        raise EEGDecodeError(
            f"cannot read EEG from {label}: {suffix} files keep their samples in companion files; "
            "pass the path, or convert the recording to FIF or EDF"
        )
    try:
        if suffix == ".ts":
            from mmtok.data.eeg_ts import read_ts

            recordings = read_ts(path if path is not None else data).recordings
        elif suffix == ".npz":
            recordings = [_read_npz(data if data is not None else path.read_bytes())]
        else:
            reader = {**_MNE_FILE_READERS, **_MNE_PATH_READERS}[suffix]
            recordings = [_read_mne(reader, path if path is not None else io.BytesIO(data))]
    except EEGDecodeError:
        raise
    except Exception as error:  # whatever MNE or numpy raise about a broken file
        raise EEGDecodeError(f"cannot read EEG from {label}: {type(error).__name__}: {error}") from error
    if not recordings or any(r.data.shape[0] == 0 or r.data.shape[1] == 0 for r in recordings):
        raise EEGDecodeError(f"cannot read EEG from {label}: no EEG channels or no samples")
    return recordings
