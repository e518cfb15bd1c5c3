"""Datasets whose items are decoded from a source, where a file that fails to decode is skipped
and counted, never a crash of a training job."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from mmtok.data.sources import open_source
from mmtok.modalities import modality as modality_entry

logger = logging.getLogger(__name__)


class DecodedSourceDataset(Dataset):
    """Subclasses say how to decode one entry (`_decode`) and how to turn it into an item (`_item`).

    `__getitem__` on an undecodable entry records it in `failed_sources` (once per process) and
    returns the next good item; `validate()` decodes everything once up front. With DataLoader
    workers each worker keeps its own record; the trainer collects them per batch.
    """

    def __init__(self, source: str | Path, *, modality: str, column: str | None = None):
        # A local path, an fsspec URL or "datasets:NAME[:SPLIT]" (mmtok.data.sources.open_source).
        self.source, self.modality = source, modality
        self._reader = open_source(source, modality=modality, column=column)
        if len(self._reader) == 0:
            looked = ", ".join(modality_entry(modality).extensions)
            raise ValueError(f"no {modality} files in {self.source} (looked for {looked})")
        self._indices = list(range(len(self._reader)))  # reader entries still in use
        self._known_bad: set[int] = set()
        self.failed_sources: list[str] = []

    def _decode(self, data: bytes, name: str) -> Any:
        raise NotImplementedError

    def _item(self, decoded: Any) -> torch.Tensor:
        raise NotImplementedError

    @property
    def num_failed(self) -> int:
        """Undecodable files met so far by this process (each counted once)."""
        return len(self.failed_sources)

    def __len__(self) -> int:
        return len(self._indices)

    def _try_decode(self, entry: int) -> Any | None:
        name = self._reader.describe(entry)
        try:
            return self._decode(self._reader.read(entry), name)
        except Exception as err:  # any decoder error must skip the file, not stop training
            self._known_bad.add(entry)
            self.failed_sources.append(name)
            logger.warning("skipping undecodable %s %s: %s: %s", self.modality, name, type(err).__name__, err)
            return None

    def __getitem__(self, index: int) -> torch.Tensor:
        n = len(self._indices)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} {self.modality} files")
        for step in range(n):
            entry = self._indices[(index + step) % n]
            if entry in self._known_bad:
                continue
            decoded = self._try_decode(entry)
            if decoded is not None:
                return self._item(decoded)
        raise ValueError(f"no decodable {self.modality} in {self.source}: all {n} files failed to decode")

    def validate(self) -> list[str]:
        """Decodes every entry once in this process, drops the failures from the index and returns them.

        Raises ValueError when nothing in the source decodes.
        """
        good, dropped = [], []
        for entry in self._indices:
            if entry not in self._known_bad and self._try_decode(entry) is not None:
                good.append(entry)
            else:
                dropped.append(self._reader.describe(entry))
        if not good:
            raise ValueError(
                f"no decodable {self.modality} in {self.source}: all {len(self._indices)} files failed to decode"
            )
        self._indices = good
        return dropped
