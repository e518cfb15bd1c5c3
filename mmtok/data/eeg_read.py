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
    # Channels of the source left out before these because their type says they are not EEG
    # (an mne Raw's ECG, EOG, stim, misc, ... channels): the input spec counts them as dropped.
    dropped_channels: int = 0

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
    def from_raw(cls, raw, types: tuple[str, ...] = ("eeg",)) -> EEGRecording:
        """The EEG channels of an mne Raw; the others (ECG, EOG, stim, ...) are left out and counted.
        MNE types EDF/BDF channels from their labels' prefixes and strips the prefix ("EOG left"
        becomes an eog channel named "left"), so a name-based count after reading would miss them."""
        import mne

        kinds = {kind: True for kind in types}  # MNE's channel types: "eeg", "ecg", ...
        eeg = mne.pick_types(raw.info, meg=False, exclude=(), **kinds)  # bad channels included
        data = raw.get_data(picks=eeg) if len(eeg) else np.zeros((0, raw.n_times))
        names = [raw.ch_names[i] for i in eeg]
        return cls(data, names, float(raw.info["sfreq"]), "V", len(raw.ch_names) - len(eeg))


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


# EDF/BDF fixed header (bytes): number of data records at 236-244 (-1: unknown, still being
# recorded), number of signals at 252-256, then 256 bytes per signal whose samples-per-record
# field sits at 256 + ns * 216 + 8 * i.
_EDF_RECORDS, _EDF_SIGNALS, _EDF_SAMPLES_AT = slice(236, 244), slice(252, 256), 216
_EDF_SAMPLE_BYTES = {".edf": 2, ".bdf": 3}


def check_edf_size(header: bytes, file_size: int, suffix: str, label: str) -> None:
    """Raises EEGDecodeError when an EDF/BDF file holds fewer data records than its header declares.

    Checked by hand because MNE only warns ("number of records does not match the file size") and
    reads what is there: a cut-off download would become a shorter recording with no error. A
    header that does not parse is left to MNE, which says what is wrong with it."""
    try:
        records, signals = int(header[_EDF_RECORDS]), int(header[_EDF_SIGNALS])
        start = 256 + signals * _EDF_SAMPLES_AT
        samples = [int(header[start + 8 * i : start + 8 * i + 8]) for i in range(signals)]
    except ValueError:
        return
    record_bytes = sum(samples) * _EDF_SAMPLE_BYTES[suffix]
    if records < 0 or record_bytes <= 0:  # -1: the recorder had not finished; MNE counts the records
        return
    header_bytes = 256 * (signals + 1)
    held = max(0, file_size - header_bytes) // record_bytes
    if held < records:
        raise EEGDecodeError(
            f"cannot read EEG from {label}: truncated {suffix[1:].upper()}: the header declares {records} data "
            f"records of {record_bytes} bytes, the file holds {held} ({file_size} bytes of "
            f"{header_bytes + records * record_bytes})"
        )


def _edf_header(path: Path | None, data: bytes | None) -> tuple[bytes, int]:
    """The fixed header and signal headers of an EDF/BDF file, and the file's size."""
    if data is not None:
        return data, len(data)
    with path.open("rb") as file:
        head = file.read(256)
        count = head[_EDF_SIGNALS].strip()
        signals = int(count) if count.isdigit() else 0  # a broken count: check_edf_size leaves it to MNE
        return head + file.read(256 * signals), path.stat().st_size


def _read_mne(reader: str, source: Any, types: tuple[str, ...]) -> EEGRecording:
    import mne

    options = {"infer_types": True} if reader in ("read_raw_edf", "read_raw_bdf") else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MNE warns about header quirks it has already handled
        raw = getattr(mne.io, reader)(source, preload=True, verbose="error", **options)
    return EEGRecording.from_raw(raw, types)


def _read_npz(data: bytes) -> EEGRecording:
    """An .npz with `data` (channels, samples), `channel_names` and `sample_rate` (and optional `unit`)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        missing = [key for key in ("data", "channel_names", "sample_rate") if key not in archive]
        if missing:
            raise ValueError(f"the .npz misses {missing} (it needs data, channel_names, sample_rate)")
        unit = str(archive["unit"]) if "unit" in archive else "uV"
        names = [str(n) for n in archive["channel_names"]]
        return EEGRecording(archive["data"], names, float(archive["sample_rate"]), unit)


def read_recordings(
    source: str | Path | bytes, name: str | None = None, types: tuple[str, ...] = ("eeg",)
) -> list[EEGRecording]:
    """Every recording in a file (aeon `.ts` files hold many trials; other formats one); of the
    files MNE reads, the channels of MNE's `types`.

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
            if suffix in _EDF_SAMPLE_BYTES:
                check_edf_size(*_edf_header(path, data), suffix, label)
            reader = {**_MNE_FILE_READERS, **_MNE_PATH_READERS}[suffix]
            recordings = [_read_mne(reader, path if path is not None else io.BytesIO(data), types)]
    except EEGDecodeError:
        raise
    except Exception as error:  # whatever MNE or numpy raise about a broken file
        raise EEGDecodeError(f"cannot read EEG from {label}: {type(error).__name__}: {error}") from error
    if not recordings or any(r.data.shape[0] == 0 or r.data.shape[1] == 0 for r in recordings):
        dropped = sum(r.dropped_channels for r in recordings)
        others = f" ({dropped} channels of other types)" if dropped else ""
        raise EEGDecodeError(f"cannot read EEG from {label}: no EEG channels{others} or no samples")
    return recordings
