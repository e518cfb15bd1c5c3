"""Rows of different lengths kept as one flat array plus their lengths, and the few numpy
operations `mmtok pack` needs on them. Written by hand because pack works on whole parquet batches
at a time (a Python step per document was its bottleneck) and neither numpy nor pyarrow offers a
ragged gather or a ragged concatenation of several parts per row."""

from __future__ import annotations

import numpy as np


def starts_of(lengths: np.ndarray) -> np.ndarray:
    """Where each row begins in the flat array."""
    return np.cumsum(lengths) - lengths


def ragged_arange(lengths: np.ndarray) -> np.ndarray:
    """0..n-1 for each row, flat: the position of every value inside its row."""
    lengths = np.asarray(lengths, dtype=np.int64)
    return np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(starts_of(lengths), lengths)


def take(values: np.ndarray, lengths: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows `order` (indexes) of a ragged array, in that order."""
    lengths = np.asarray(lengths, dtype=np.int64)
    chosen = lengths[order]
    source = np.repeat(starts_of(lengths)[order], chosen) + ragged_arange(chosen)
    return values[source], chosen


def concat_parts(parts: list[tuple[np.ndarray, np.ndarray]], rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Row i of the result is row i of every part, one after another. A part is (values, lengths)
    with one length per row, or (values, None): the same values in every row."""
    part_lengths = [np.full(rows, len(v), np.int64) if n is None else np.asarray(n, np.int64) for v, n in parts]
    lengths = np.sum(part_lengths, axis=0) if parts else np.zeros(rows, np.int64)
    out = np.empty(int(lengths.sum()), dtype=np.int64)
    offset = starts_of(lengths)  # where the next part of each row goes
    for (values, fixed), n in zip(parts, part_lengths):
        flat = np.tile(values, rows) if fixed is None else values
        out[np.repeat(offset, n) + ragged_arange(n)] = flat
        offset = offset + n
    return out, lengths
