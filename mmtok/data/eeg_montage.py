"""Electrode names and positions, and the one tensor layout an EEG tokenizer takes.

Channel names from EDF headers, caps and datasets come in many spellings ("EEG Fp1-REF",
"FP1", "Fp1-LE"); `normalise_channel_name` reduces them to the 10-05 spelling ("Fp1"), and
`channel_position` looks the result up on MNE's template 10-05 montage (343 named positions
shipped with MNE, no download). A bipolar name whose two ends are known ("Fp1-F7") sits at their
midpoint. A name without a position gets NaN, which the model replaces by a learned fallback
embedding; each such name is logged once per process.

The tensor layout (`pack_eeg` / `unpack_eeg`): one example is float (channels, 3 + samples), the
first three values of each row being that electrode's position in metres (head frame of the
template montage; NaN where unknown), the rest its samples in microvolts. Positions travel with
the signal so that the template's one-tensor contract (trainer, `encode`, `encode_many`, shards)
holds unchanged; the input spec, the model and the training recipe all use these two helpers.
A NaN *sample* marks a missing patch (the training dataset pads short recordings and small caps
with NaN); prepared recordings never hold one.
"""

from __future__ import annotations

import functools
import logging
import re
import warnings

import numpy as np
import torch

logger = logging.getLogger("mmtok.eeg")

POSITION_VALUES = 3  # x, y, z in metres before each channel's samples
HEAD_RADIUS_M = 0.1  # a head's radius: template-montage positions divided by it are about unit scale
MONTAGE = "colin27_1005"  # MNE >= 1.13; called "standard_1005" before
# Reference suffixes that say how a channel was recorded, not where ("EEG Fp1-REF", "T3-LE").
_REFERENCE = re.compile(r"[-_ ]?(REF|LE|RE|AR|AVG|AV|CAR|LINKED|A1A2|M1M2)$", re.IGNORECASE)
_TYPE_PREFIX = re.compile(r"^EEG[\s:_-]+", re.IGNORECASE)
# Channels that are not EEG even when a header types them so (TUH's "EEG EKG1-REF", triggers).
NON_EEG = re.compile(
    r"(^|[\s_-])(ECG|EKG|EMG|EOG|VEOG|HEOG|RESP|PHOTIC|IBI|BURSTS|SUPPR|STI\d*|STATUS|TRIGGER|EVENT|ANNOT\w*|SPO2)"
    r"\d*([\s_-]|$)",
    re.IGNORECASE,
)

_warned: set[str] = set()


@functools.cache
def montage_positions() -> dict[str, tuple[str, np.ndarray]]:
    """lower-case name -> (10-05 spelling, xyz in metres) for every electrode of the template montage."""
    import mne

    name = MONTAGE if MONTAGE in mne.channels.get_builtin_montages() else "standard_1005"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "standard_1005" is deprecated in newer MNE
        positions = mne.channels.make_standard_montage(name).get_positions()["ch_pos"]
    return {key.lower(): (key, np.asarray(xyz, dtype=np.float64)) for key, xyz in positions.items()}


def is_eeg_name(name: str) -> bool:
    """False for channels whose name says they are not EEG (ECG, EOG, triggers, ...)."""
    return NON_EEG.search(name.strip()) is None


def normalise_channel_name(name: str) -> str:
    """ "EEG Fp1-REF" -> "Fp1", "FP1" -> "Fp1", "fp1-f7" -> "Fp1-F7"; a name that is no 10-05
    electrode (or pair of them) keeps its own spelling, only stripped."""
    stripped = name.strip().replace(",", "_")  # names are stored comma-separated in shard rows
    bare = _TYPE_PREFIX.sub("", stripped) or stripped
    bare = _REFERENCE.sub("", bare) or bare
    known = montage_positions()
    if bare.lower() in known:
        return known[bare.lower()][0]
    ends = [end.strip().lower() for end in bare.split("-")]
    if len(ends) == 2 and all(end in known for end in ends):
        return "-".join(known[end][0] for end in ends)
    return stripped


def channel_position(name: str) -> np.ndarray:
    """xyz (metres) of a normalised name, the midpoint of a bipolar pair, or NaN (logged once per name)."""
    known = montage_positions()
    ends = [name] if name.lower() in known else name.split("-")
    if ends and all(end.lower() in known for end in ends):
        return np.mean([known[end.lower()][1] for end in ends], axis=0)
    if name not in _warned:
        _warned.add(name)
        logger.warning("EEG channel %r has no position on the 10-05 montage: it uses the learned fallback", name)
    return np.full(POSITION_VALUES, np.nan)


def channel_positions(names: list[str]) -> np.ndarray:
    return np.stack([channel_position(name) for name in names]) if names else np.zeros((0, POSITION_VALUES))


def pack_eeg(signal: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """signal (..., C, T) in microvolts and positions (..., C, 3) -> (..., C, 3 + T)."""
    if positions.shape[-1] != POSITION_VALUES or positions.shape[:-1] != signal.shape[:-1]:
        raise ValueError(f"positions {tuple(positions.shape)} do not match signal {tuple(signal.shape)}")
    return torch.cat([positions.to(signal.dtype), signal], dim=-1)


def unpack_eeg(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., C, 3 + T) -> positions (..., C, 3), signal (..., C, T)."""
    if x.shape[-1] < POSITION_VALUES:
        raise ValueError(f"an EEG tensor holds (channels, 3 + samples), got {tuple(x.shape)}")
    return x[..., :POSITION_VALUES], x[..., POSITION_VALUES:]
