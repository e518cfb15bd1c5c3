"""Documents into fixed-length training sequences: the two boundary policies of `mmtok pack`.

A document is a run of LLM ids that already ends with its end-of-document id. The packer takes
documents a batch at a time (flat ids + lengths) and hands back finished rows as `PackedRows`:
a (rows, seq_len) matrix and, per row, the lengths of the document pieces it holds, in order (what a
trainer needs to reset attention and position ids at each boundary: cu_seqlens, or a block mask).

- "split": documents follow one another with no gap; a row ends wherever `seq_len` falls, and the
  document it cuts continues at the start of the next row. No padding but the final row's.
- "whole": a document that does not fit in what is left of a row starts the next row, and the
  rest of the row is padding. Only a document longer than a whole row is cut (into whole rows and
  a remainder that shares its row with the documents after it).

Both are deterministic: the same documents in the same order give the same rows, however they
are batched. Internally every document gets a start in a virtual stream of rows laid end to end
(padding included), and rows are cut from that stream.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from mmtok.ragged import ragged_arange, starts_of

POLICIES = ("split", "whole")


class PackedRows(NamedTuple):
    ids: np.ndarray  # (rows, seq_len); padding after each row's pieces
    piece_lengths: np.ndarray  # flat: every row's document pieces, row after row
    pieces_per_row: np.ndarray  # (rows,)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def real_lengths(self) -> np.ndarray:
        """Ids per row that are not padding."""
        row = np.repeat(np.arange(len(self.ids)), self.pieces_per_row)
        return np.bincount(row, weights=self.piece_lengths, minlength=len(self.ids)).astype(np.int64)

    def lengths_of_row(self, row: int) -> list[int]:
        start = int(self.pieces_per_row[:row].sum())
        return self.piece_lengths[start : start + int(self.pieces_per_row[row])].tolist()

    def attention_mask(self) -> np.ndarray:
        return (np.arange(self.ids.shape[1]) < self.real_lengths[:, None]).astype(np.int8)

    def position_ids(self) -> np.ndarray:
        """0, 1, 2, ... restarting at each document piece; 0 on padding (pieces fill a row from its start)."""
        positions = np.zeros(self.ids.shape, dtype=np.int64)
        positions[self.attention_mask() == 1] = ragged_arange(self.piece_lengths)
        return positions

    @property
    def padding(self) -> int:
        return int(self.ids.size - self.piece_lengths.sum())


class Packer:
    def __init__(self, seq_len: int, policy: str, pad_id: int):
        if seq_len < 2:
            raise ValueError(f"seq_len must be at least 2, got {seq_len}")
        if policy not in POLICIES:
            raise ValueError(f"the document policy must be one of {POLICIES}, got {policy!r}")
        self.seq_len, self.policy, self.pad_id = seq_len, policy, pad_id
        self.base = 0  # virtual position of the first id not yet in a finished row (a row boundary)
        self.end = 0  # virtual position after the last document placed
        self.held = np.zeros(0, dtype=np.int64)  # the virtual stream from base to end
        self.segments = np.zeros((0, 2), dtype=np.int64)  # (start, end) of document parts after base
        self.documents_cut = 0  # documents that span more than one row

    def _starts(self, lengths: np.ndarray) -> np.ndarray:
        if self.policy == "split":
            return self.end + starts_of(lengths)
        starts = np.empty(len(lengths), dtype=np.int64)
        end, s = self.end, self.seq_len
        for i, n in enumerate(lengths.tolist()):  # greedy placement: integers only, no ids touched
            if end % s and end % s + n > s:
                end += s - end % s  # to the next row: the rest of this one is padding
            starts[i], end = end, end + n
        return starts

    def push(self, ids: np.ndarray, lengths: np.ndarray) -> PackedRows:
        """Places a batch of documents (flat ids, their lengths); returns the rows they finished."""
        lengths = np.asarray(lengths, dtype=np.int64)
        if not len(lengths):
            return self._rows(0)
        starts = self._starts(lengths)
        ends = starts + lengths
        first_row, last_row = starts // self.seq_len, (ends - 1) // self.seq_len
        self.documents_cut += int((first_row != last_row).sum())
        stream = np.full(int(ends[-1] - self.base), self.pad_id, dtype=np.int64)
        stream[: len(self.held)] = self.held
        stream[np.repeat(starts - self.base, lengths) + ragged_arange(lengths)] = ids
        self.held, self.end = stream, int(ends[-1])
        self.segments = np.concatenate([self.segments, np.stack([starts, ends], axis=1)])
        return self._rows((self.end - self.base) // self.seq_len)

    def finish(self) -> PackedRows:
        """The last, partly filled row (padded), if any."""
        if self.end == self.base:
            return self._rows(0)
        row_end = self.base + self.seq_len
        self.held = np.concatenate([self.held, np.full(row_end - self.end, self.pad_id, dtype=np.int64)])
        self.end = row_end
        return self._rows(1)

    def _rows(self, count: int) -> PackedRows:
        s = self.seq_len
        cut = self.base + count * s
        done = self.segments[:, 0] < cut
        pieces = _split_at_rows(self.segments[done], s, cut)
        row = (pieces[:, 0] - self.base) // s
        rows = PackedRows(
            self.held[: count * s].reshape(count, s),
            pieces[:, 1] - pieces[:, 0],
            np.bincount(row, minlength=count).astype(np.int64),
        )
        # What continues past the cut: the unfinished part of the segment the cut goes through.
        rest = self.segments[self.segments[:, 1] > cut]
        rest[:, 0] = np.maximum(rest[:, 0], cut)
        self.segments, self.held, self.base = rest, self.held[count * s :], cut
        return rows


def _split_at_rows(segments: np.ndarray, seq_len: int, limit: int) -> np.ndarray:
    """(start, end) segments cut at every row boundary, kept below `limit`; in order."""
    if not len(segments):
        return np.zeros((0, 2), dtype=np.int64)
    starts, ends = segments[:, 0], np.minimum(segments[:, 1], limit)
    first, last = starts // seq_len, (ends - 1) // seq_len
    count = last - first + 1
    row = np.repeat(first, count) + ragged_arange(count)
    low = np.maximum(np.repeat(starts, count), row * seq_len)
    high = np.minimum(np.repeat(ends, count), (row + 1) * seq_len)
    return np.stack([low, high], axis=1)
