"""Documents into fixed-length training sequences: the two boundary policies of `mmtok pack`.

A document is a 1-D array of LLM ids that already ends with its end-of-document id. A packer takes
documents one at a time and hands back finished rows: `PackedRow(ids, lengths)`, where `lengths`
are the lengths of the document pieces the row holds, in order (what a trainer needs to reset
attention and position ids at each boundary: cu_seqlens, or a block-diagonal mask).

- "split": documents follow one another with no gap; a row ends wherever `seq_len` falls, and the
  document it cuts continues at the start of the next row. No padding but the final row's.
- "whole": a document that does not fit in what is left of a row starts the next row, and the
  rest of the row is padding. Only a document longer than a whole row is cut (into whole rows and
  a remainder that shares its row with the documents after it).

Both are deterministic: the same documents in the same order give the same rows.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

POLICIES = ("split", "whole")


class PackedRow(NamedTuple):
    ids: np.ndarray  # exactly seq_len ids; padding after sum(lengths)
    lengths: list[int]  # lengths of the document pieces in the row, in order

    @property
    def padding(self) -> int:
        return len(self.ids) - sum(self.lengths)


class Packer:
    def __init__(self, seq_len: int, policy: str, pad_id: int):
        if seq_len < 2:
            raise ValueError(f"seq_len must be at least 2, got {seq_len}")
        if policy not in POLICIES:
            raise ValueError(f"the document policy must be one of {POLICIES}, got {policy!r}")
        self.seq_len, self.policy, self.pad_id = seq_len, policy, pad_id
        self.pieces: list[np.ndarray] = []  # of the row being filled
        self.held = 0
        self.documents_cut = 0  # documents that span more than one row

    def push(self, document: np.ndarray) -> list[PackedRow]:
        rows = []
        if self.policy == "whole" and self.held and self.held + len(document) > self.seq_len:
            rows.append(self._close())
        if self.held + len(document) > self.seq_len:
            self.documents_cut += 1
        while self.held + len(document) >= self.seq_len:
            take = self.seq_len - self.held
            self.pieces.append(document[:take])
            self.held += take
            rows.append(self._close())
            document = document[take:]
        if len(document):
            self.pieces.append(document)
            self.held += len(document)
        return rows

    def finish(self) -> list[PackedRow]:
        """The last, partly filled row (padded), if any."""
        return [self._close()] if self.held else []

    def _close(self) -> PackedRow:
        lengths = [len(piece) for piece in self.pieces]
        padding = np.full(self.seq_len - self.held, self.pad_id, dtype=np.int64)
        row = PackedRow(np.concatenate([*self.pieces, padding]), lengths)
        self.pieces, self.held = [], 0
        return row


def position_ids(row: PackedRow) -> np.ndarray:
    """0, 1, 2, ... restarting at each document piece; 0 on padding."""
    positions = np.zeros(len(row.ids), dtype=np.int64)
    lengths = np.asarray(row.lengths, dtype=np.int64)
    if len(lengths):
        starts = np.cumsum(lengths) - lengths
        total = int(lengths.sum())
        positions[:total] = np.arange(total) - np.repeat(starts, lengths)
    return positions
