"""The one input path for ECG, on the EEG input path's steps (mmtok.data.eeg_io) with ECG's own
channels, places and readers:

1. WFDB records (a `.hea` header with its `.dat` samples beside it, through `wfdb`) and EDF files
   (MNE, channels MNE types as ECG or EEG) are read; channels named as ECG leads are kept (the 12
   standard leads, MIT-BIH's modified leads "MLII", "MLI", and names holding "ECG"/"EKG"); the
   others (respiration, blood pressure, EEG) are dropped and counted;
2. each lead is placed by its direction (`LEAD_DIRECTIONS`: the hexaxial angles of the limb leads
   in the frontal plane, the precordial leads' angles in the horizontal plane), as a point on a
   sphere of the EEG montage's head radius, so the model's electrode embedding tells leads apart
   (an unknown lead: NaN, the learned fallback);
3. then as EEG: microvolts, means removed, resampling to `sample_rate` (250 Hz), MNE's FIR
   band-pass (0.5-100 Hz: baseline wander out, QRS kept) and notches, clipping at +-`clip_uv`.

The packed layout and `info` are EEG's: (1, leads, 3 + samples), lead names in `channel_names`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mmtok.data.eeg_io import EEGInputSpec
from mmtok.data.eeg_montage import HEAD_RADIUS_M
from mmtok.data.eeg_read import EEGDecodeError, EEGRecording, read_recordings

ECG_FILE_SUFFIXES = (".hea", ".edf")
_MV = {"mv": 1e3, "uv": 1.0, "µv": 1.0, "v": 1e6}  # WFDB unit strings -> microvolts


def _frontal(degrees: float) -> tuple[float, float, float]:
    """x to the patient's left, y down, z forward; the hexaxial angle runs from left towards down."""
    a = math.radians(degrees)
    return (math.cos(a), math.sin(a), 0.0)


def _horizontal(degrees: float) -> tuple[float, float, float]:
    """From the left towards the front, in the horizontal plane."""
    a = math.radians(degrees)
    return (math.cos(a), 0.0, math.sin(a))


LEAD_DIRECTIONS = {
    "I": _frontal(0),
    "II": _frontal(60),
    "III": _frontal(120),
    "aVR": _frontal(-150),
    "aVL": _frontal(-30),
    "aVF": _frontal(90),
    "V1": _horizontal(115),
    "V2": _horizontal(94),
    "V3": _horizontal(75),
    "V4": _horizontal(60),
    "V5": _horizontal(30),
    "V6": _horizontal(0),
    "MLII": _frontal(60),  # the Holter (Mason-Likar) lead II of MIT-BIH
    "MLI": _frontal(0),
}
_BY_LOWER = {name.lower(): name for name in LEAD_DIRECTIONS}
_PREFIX = re.compile(r"^(ecg|ekg)[\s_-]*(lead[\s_-]*)?", re.IGNORECASE)


def lead_name(name: str) -> str:
    """ "ECG II" -> "II", "avf" -> "aVF", "v5" -> "V5"; other names keep their spelling, stripped."""
    stripped = name.strip().replace(",", "_")  # names are stored comma-separated in shard rows
    bare = _PREFIX.sub("", stripped) or stripped
    return _BY_LOWER.get(bare.lower(), bare)


def is_lead_name(name: str) -> bool:
    return lead_name(name) in LEAD_DIRECTIONS or _PREFIX.match(name.strip()) is not None


def read_wfdb(path: Path) -> EEGRecording:
    """A WFDB record from its header's path (the samples in the files the header names beside it)."""
    import wfdb

    try:
        record = wfdb.rdrecord(str(path.with_suffix("")))
    except Exception as error:  # wfdb raises bare ValueErrors and OSErrors about broken records
        raise EEGDecodeError(f"cannot read ECG from {path}: {type(error).__name__}: {error}") from error
    if record.p_signal is None or record.p_signal.size == 0:
        raise EEGDecodeError(f"cannot read ECG from {path}: the record holds no samples")
    units = [_MV.get(str(unit).strip().lower()) for unit in record.units]
    if None in units:
        raise EEGDecodeError(f"cannot read ECG from {path}: units {record.units} are not volts")
    microvolts = record.p_signal.T * np.asarray(units)[:, None]
    return EEGRecording(microvolts, list(record.sig_name), float(record.fs), "uV")


def read_ecg(source: Any) -> list[EEGRecording]:
    """A WFDB header's path, or a file MNE reads (EDF, path or bytes) -> its recording."""
    if isinstance(source, (str, Path)) and Path(source).suffix.lower() == ".hea":
        if not Path(source).is_file():
            raise FileNotFoundError(f"ECG record {source} does not exist")
        return [read_wfdb(Path(source))]
    return read_recordings(source, types=ECGInputSpec.channel_types)


@dataclasses.dataclass
class ECGInputSpec(EEGInputSpec):
    """How records are prepared for one ECG tokenizer (see the module docstring)."""

    modality: ClassVar[str] = "ecg"
    signal_name: ClassVar[str] = "ECG"
    channel_types: ClassVar[tuple[str, ...]] = ("ecg", "eeg")  # EDF leads MNE types as EEG when unprefixed
    file_suffixes: ClassVar[tuple[str, ...]] = ECG_FILE_SUFFIXES

    sample_rate: int = 250
    band_pass: list[float | None] | None = dataclasses.field(default_factory=lambda: [0.5, 100.0])
    notch_hz: list[float] = dataclasses.field(default_factory=list)
    clip_uv: float | None = 10_000.0

    def keeps_channel(self, name: str) -> bool:
        return is_lead_name(name)

    def channel_name(self, name: str) -> str:
        return lead_name(name)

    def positions(self, names: list[str]) -> np.ndarray:
        unknown = (math.nan,) * 3
        return np.array([LEAD_DIRECTIONS.get(n, unknown) for n in names], dtype=np.float64) * HEAD_RADIUS_M

    def read(self, source: Any) -> list[EEGRecording]:
        return read_ecg(source)

    def to_json(self) -> dict:
        steps = (
            "ECG leads kept by name (12 standard, MLII/MLI, ECG-prefixed); lead directions as positions; "
            "microvolts; means removed; MNE polyphase resampling; MNE FIR band-pass and notch; clipping at +-clip_uv"
        )
        return {**super().to_json(), "preparation": steps}
