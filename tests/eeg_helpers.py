"""Small synthetic EEG recordings and files for the EEG tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmtok.data.eeg_read import EEGRecording
from mmtok.models import flavour

CAP = ["Fp1", "Fp2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2"]
TINY_EEG = flavour("eeg")


def synthetic_eeg(names=CAP, rate: float = 200, seconds: float = 2.0, seed: int = 0, alpha: float = 10.0) -> np.ndarray:
    """(channels, samples) microvolts: a 10 Hz rhythm of `alpha` µV strongest at the back of the
    head, a slower 5 Hz one at the front, plus 1/f-ish noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(rate * seconds)) / rate
    rows = []
    for i, _ in enumerate(names):
        back = i / max(1, len(names) - 1)
        phase = rng.uniform(0, 2 * np.pi, 2)
        noise = np.cumsum(rng.normal(0, 1, t.size)) * 0.3
        noise -= np.convolve(noise, np.ones(25) / 25, mode="same")
        rhythms = alpha * back * np.sin(2 * np.pi * 10 * t + phase[0]) + 6 * np.sin(2 * np.pi * 5 * t + phase[1])
        rows.append(rhythms + noise)
    return np.stack(rows)


def recording(names=CAP, rate: float = 200, seconds: float = 2.0, seed: int = 0, alpha: float = 10.0) -> EEGRecording:
    return EEGRecording(synthetic_eeg(names, rate, seconds, seed, alpha), list(names), rate, "uV")


def write_npz(path: Path, rec: EEGRecording) -> Path:
    np.savez(path, data=rec.data, channel_names=np.array(rec.channel_names), sample_rate=rec.sample_rate, unit=rec.unit)
    return path


def write_edf(path: Path, rec: EEGRecording, labels: list[str] | None = None) -> Path:
    """An EDF written by pyedflib (physical range +-500 µV, 16-bit)."""
    import pyedflib.highlevel as edf

    headers = edf.make_signal_headers(
        labels or rec.channel_names, "uV", rec.sample_rate, physical_min=-500.0, physical_max=500.0
    )
    edf.write_edf(str(path), rec.microvolts(), headers)
    return path


def write_brainvision(folder: Path, stem: str, rec: EEGRecording) -> Path:
    """A BrainVision recording (header, markers, float32 samples in three files), written by hand."""
    names = "\n".join(f"Ch{i + 1}={name},,1,µV" for i, name in enumerate(rec.channel_names))
    header = (
        "Brain Vision Data Exchange Header File Version 1.0\n\n[Common Infos]\nCodepage=UTF-8\n"
        f"DataFile={stem}.eeg\nMarkerFile={stem}.vmrk\nDataFormat=BINARY\nDataOrientation=MULTIPLEXED\n"
        f"NumberOfChannels={len(rec.channel_names)}\nSamplingInterval={1e6 / rec.sample_rate:g}\n\n"
        f"[Binary Infos]\nBinaryFormat=IEEE_FLOAT_32\n\n[Channel Infos]\n{names}\n"
    )
    markers = (
        "Brain Vision Data Exchange Marker File, Version 1.0\n\n[Common Infos]\nCodepage=UTF-8\n"
        f"DataFile={stem}.eeg\n\n[Marker Infos]\nMk1=New Segment,,1,1,0\n"
    )
    (folder / f"{stem}.vhdr").write_text(header, encoding="utf-8")
    (folder / f"{stem}.vmrk").write_text(markers, encoding="utf-8")
    rec.microvolts().T.astype("<f4").tofile(folder / f"{stem}.eeg")
    return folder / f"{stem}.vhdr"
