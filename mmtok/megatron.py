"""Megatron-LM / megatron-core indexed datasets (`PREFIX.bin` + `PREFIX.idx`): a writer and an
independent reader of the documented layout.

`.bin` holds every sequence's ids back to back in one integer dtype. `.idx` is, little-endian:

    b"MMIDIDX\\x00\\x00"           9-byte magic
    version                     uint64, 1
    dtype code                  uint8: 1 uint8, 2 int8, 3 int16, 4 int32, 5 int64, 6 float64, 7 float32, 8 uint16
    sequence count              uint64
    document-index length       uint64 (documents + 1)
    sequence_lengths            int32 x sequence count
    sequence_pointers           int64 x sequence count (byte offset of each sequence in .bin)
    document_indices            int64 x (documents + 1): 0, then after each document the number of
                                sequences so far (a document is sequences [d[i], d[i+1]))

(megatron also knows an optional int8 `sequence_modes` array after these for multimodal data;
this writer never writes it.) Written by hand because megatron-core is a training framework
(heavy, GPU-oriented); the layout is small and fixed, and its own reader checks our files in the
tests. Megatron's GPTDataset packs documents into samples itself, with the eod id between them.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from mmtok.storage import CommitOnExit, temporary_name

MAGIC = b"MMIDIDX\x00\x00"
VERSION = 1
DTYPE_CODES = {
    np.dtype(np.uint8): 1,
    np.dtype(np.int8): 2,
    np.dtype(np.int16): 3,
    np.dtype(np.int32): 4,
    np.dtype(np.int64): 5,
    np.dtype(np.float64): 6,
    np.dtype(np.float32): 7,
    np.dtype(np.uint16): 8,
}
CODE_DTYPES = {code: dtype for dtype, code in DTYPE_CODES.items()}


def dtype_for_vocab(vocab_size: int) -> np.dtype:
    """uint16 while every id fits (< 65,536), int32 beyond: megatron's own choice."""
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.int32)


class IndexedDatasetWriter(CommitOnExit):
    """Streams sequences into PREFIX.bin; writes PREFIX.idx on a clean exit. Both files are written
    under temporary names and renamed at the end, so a job that dies leaves no half dataset."""

    def __init__(self, prefix: str | Path, dtype):
        self.dtype = np.dtype(dtype)
        if self.dtype not in DTYPE_CODES:
            raise ValueError(f"megatron indexed datasets have no dtype {self.dtype}")
        self.prefix = Path(prefix)
        self.prefix.parent.mkdir(parents=True, exist_ok=True)
        self.finals = [self.prefix.with_name(self.prefix.name + suffix) for suffix in (".bin", ".idx")]
        self.temporaries = [f.with_name(temporary_name(f.name)) for f in self.finals]
        self.bin = open(self.temporaries[0], "wb", buffering=1 << 20)
        self.lengths: list[int] = []
        self.document_indices = [0]
        info = np.iinfo(self.dtype) if self.dtype.kind in "iu" else None
        self.low, self.high = (info.min, info.max) if info else (-np.inf, np.inf)

    def add_sequence(self, ids) -> None:
        ids = np.asarray(ids)
        if ids.ndim != 1:
            raise ValueError(f"a sequence is 1-D, got shape {ids.shape}")
        if len(ids) and (ids.min() < self.low or ids.max() > self.high):
            bad = ids.min() if ids.min() < self.low else ids.max()
            raise ValueError(f"id {bad} does not fit {self.dtype.name} (ids {self.low}..{self.high})")
        self.bin.write(ids.astype(self.dtype, copy=False).tobytes())
        self.lengths.append(len(ids))

    def end_document(self) -> None:
        if self.document_indices[-1] == len(self.lengths):
            raise ValueError("a document needs at least one sequence")
        self.document_indices.append(len(self.lengths))

    def add_document(self, ids) -> None:
        self.add_sequence(ids)
        self.end_document()

    def close(self) -> None:
        if self.document_indices[-1] != len(self.lengths):
            self.end_document()  # sequences added after the last end_document form the last document
        self.bin.close()
        lengths = np.asarray(self.lengths, dtype=np.int32)
        pointers = np.zeros(len(lengths), dtype=np.int64)
        np.cumsum(lengths[:-1].astype(np.int64) * self.dtype.itemsize, out=pointers[1:])
        with open(self.temporaries[1], "wb") as idx:
            idx.write(MAGIC)
            idx.write(struct.pack("<Q", VERSION))
            idx.write(struct.pack("<B", DTYPE_CODES[self.dtype]))
            idx.write(struct.pack("<Q", len(lengths)))
            idx.write(struct.pack("<Q", len(self.document_indices)))
            idx.write(lengths.tobytes())
            idx.write(pointers.tobytes())
            idx.write(np.asarray(self.document_indices, dtype=np.int64).tobytes())
        for temporary, final in zip(self.temporaries, self.finals):
            os.replace(temporary, final)

    def abort(self) -> None:
        self.bin.close()
        for temporary in self.temporaries:
            temporary.unlink(missing_ok=True)


class IndexedDatasetReader:
    """Reads PREFIX.bin/.idx with memory maps; `reader[i]` is sequence i."""

    def __init__(self, prefix: str | Path):
        prefix = Path(prefix)
        idx_path, bin_path = prefix.with_name(prefix.name + ".idx"), prefix.with_name(prefix.name + ".bin")
        with open(idx_path, "rb") as idx:
            if idx.read(len(MAGIC)) != MAGIC:
                raise ValueError(f"{idx_path} is not a megatron index (no MMIDIDX header)")
            (version,) = struct.unpack("<Q", idx.read(8))
            if version != VERSION:
                raise ValueError(f"{idx_path}: index version {version}, this reader knows {VERSION}")
            (code,) = struct.unpack("<B", idx.read(1))
            if code not in CODE_DTYPES:
                raise ValueError(f"{idx_path}: unknown dtype code {code}")
            sequences, documents = struct.unpack("<QQ", idx.read(16))
            offset = idx.tell()
        self.dtype = CODE_DTYPES[code]
        expected = offset + sequences * (4 + 8) + documents * 8
        if idx_path.stat().st_size < expected:
            raise ValueError(f"{idx_path} is truncated: {idx_path.stat().st_size} bytes, the header needs {expected}")
        index = np.memmap(idx_path, mode="r", dtype=np.uint8)
        self.sequence_lengths = np.frombuffer(index, np.int32, sequences, offset)
        self.sequence_pointers = np.frombuffer(index, np.int64, sequences, offset + sequences * 4)
        self.document_indices = np.frombuffer(index, np.int64, documents, offset + sequences * 12)
        needed = int(self.sequence_lengths.astype(np.int64).sum()) * self.dtype.itemsize
        if bin_path.stat().st_size != needed:
            raise ValueError(
                f"{bin_path} holds {bin_path.stat().st_size} bytes, "
                f"its index describes {needed}: truncated or mismatched"
            )
        self.data = np.memmap(bin_path, mode="r", dtype=self.dtype) if needed else np.zeros(0, self.dtype)

    def __len__(self) -> int:
        return len(self.sequence_lengths)

    def __getitem__(self, i: int) -> np.ndarray:
        start = int(self.sequence_pointers[i]) // self.dtype.itemsize
        return self.data[start : start + int(self.sequence_lengths[i])]

    def documents(self):
        """Each document's ids (its sequences concatenated), in order."""
        for first, stop in zip(self.document_indices[:-1], self.document_indices[1:]):
            yield np.concatenate([self[i] for i in range(first, stop)])
