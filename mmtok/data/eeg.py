"""The EEG dataset for training tokenizers: windows of prepared recordings.

Every recording (a file, or each trial of a `.ts` file) goes through the one EEG input path
(`EEGInputSpec.prepare_recording`) once, when the dataset is built, and is kept in memory (EEG is
small: an hour of 64 channels at 200 Hz is 184 MB of float32). An item is a window of
`segment_patches` patches of `channels` channels, both drawn at random (from torch's RNG, which
the trainer seeds per item): larger caps give random subsets (so the model meets many montages),
smaller caps and shorter recordings are padded with NaN, which the model treats as missing
patches and the losses ignore. Recordings that cannot be read or prepared are skipped, logged and
listed in `failed_sources` (reported with the first item fetched, so the trainer counts them).
"""

from __future__ import annotations

import glob
import logging
from pathlib import Path

import torch
from torch.utils.data import Dataset

from mmtok.data.eeg_io import EEGInputSpec
from mmtok.data.eeg_montage import POSITION_VALUES, pack_eeg, unpack_eeg
from mmtok.data.eeg_read import EEG_FILE_SUFFIXES

logger = logging.getLogger(__name__)


def eeg_files(source: str | Path | list, suffixes: tuple[str, ...] = EEG_FILE_SUFFIXES) -> list[Path]:
    """Files with `suffixes` in a folder (recursive), a glob, a file, or a list of those, sorted."""
    if isinstance(source, (list, tuple)):
        return [path for item in source for path in eeg_files(item, suffixes)]
    text = str(source)
    if glob.has_magic(text):
        candidates = [Path(p) for p in glob.glob(text, recursive=True)]
    elif Path(text).is_dir():
        candidates = list(Path(text).rglob("*"))
    elif Path(text).is_file():
        return [Path(text)]
    else:
        raise FileNotFoundError(f"EEG source {text} does not exist")
    return sorted(p for p in candidates if p.is_file() and p.name.lower().endswith(suffixes))


class EEGDataset(Dataset):
    """Training windows, float (channels, 3 + segment_patches * patch_size) in the packed layout."""

    def __init__(
        self,
        source: str | Path | list,
        *,
        spec: EEGInputSpec,
        patch_size: int,
        segment_patches: int,
        channels: int,
    ):
        if segment_patches < 1 or channels < 1:
            raise ValueError("segment_patches and channels must be >= 1")
        self.spec, self.patch_size = spec, patch_size
        self.segment_patches, self.channels = segment_patches, channels
        self.recordings: list[torch.Tensor] = []  # packed (C, 3 + whole patches)
        self._unreported: list[str] = []
        self.failed_sources: list[str] = []
        files = eeg_files(source, spec.file_suffixes)
        if not files:
            raise ValueError(f"no {spec.signal_name} files in {source} (looked for {', '.join(spec.file_suffixes)})")
        for path in files:
            self._add(path)
        if not self.recordings:
            raise ValueError(
                f"no usable {spec.signal_name} in {source}: all {len(files)} files failed or are under one patch"
            )
        # One item per window of segment_patches a recording holds (at least one).
        windows = [max(1, self._patches(x) // segment_patches) for x in self.recordings]
        self.items = [r for r, count in enumerate(windows) for _ in range(count)]

    def _patches(self, x: torch.Tensor) -> int:
        return unpack_eeg(x)[1].shape[-1] // self.patch_size

    def _add(self, path: Path) -> None:
        try:
            prepared = [self.spec.prepare_recording(r).tensor[0] for r in self.spec.read(path)]
        except Exception as error:  # any reader or preparation error skips the file, not the run
            logger.warning("skipping %s %s: %s: %s", self.spec.signal_name, path, type(error).__name__, error)
            self._unreported.append(str(path))
            return
        for x in prepared:
            whole = self._patches(x) * self.patch_size
            if whole:
                self.recordings.append(x[:, : POSITION_VALUES + whole].clone())

    @property
    def num_failed(self) -> int:
        return len(self.failed_sources) + len(self._unreported)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> torch.Tensor:
        if self._unreported:  # the trainer counts sources that fail while items are fetched
            self.failed_sources += self._unreported
            self._unreported = []
        positions, signal = unpack_eeg(self.recordings[self.items[index]])
        available = signal.shape[-1] // self.patch_size
        start = int(torch.randint(available - self.segment_patches + 1, ())) if available > self.segment_patches else 0
        length = self.segment_patches * self.patch_size
        window = signal[:, start * self.patch_size : start * self.patch_size + length]
        count = signal.shape[0]
        picked = torch.randperm(count)[: self.channels]
        window, positions = window[picked], positions[picked]
        out = torch.full((self.channels, length), float("nan"))
        out[: len(picked), : window.shape[-1]] = window
        out_positions = torch.full((self.channels, positions.shape[-1]), float("nan"))
        out_positions[: len(picked)] = positions
        return pack_eeg(out, out_positions)
