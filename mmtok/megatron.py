"""Megatron-LM / megatron-core indexed datasets (`PREFIX.bin` + `PREFIX.idx`): a writer and an
independent reader of the documented layout.

`.bin` holds every sequence's ids back to back in one dtype. `.idx` is, little-endian:

    b"MMIDIDX\\x00\\x00"           9-byte magic
    version                     uint64, 1
    dtype code                  uint8: 1 uint8, 2 int8, 3 int16, 4 int32, 5 int64, 6 float64, 7 float32, 8 uint16
    sequence count              uint64 (n)
    document-index length       uint64 (documents + 1)
    sequence_lengths            int32 x n, in ids
    sequence_pointers           int64 x n, byte offset of each sequence in .bin (running sums)
    document_indices            int64 x (documents + 1): 0, then after each document the number of
                                sequences so far (document i is sequences [d[i], d[i+1]))
    sequence_modes (optional)   int8 x n, megatron's multimodal flag; read here, never written

Megatron's GPTDataset samples over sequences (it ignores document_indices; its BERT/T5 datasets
group sentences by them) and concatenates them into samples as they are, so a GPT document is one
sequence ending in its own end-of-document id. Written by hand because megatron-core is a
training framework (seconds to import, pulls in torch); its own reader checks our files in the tests.
"""

from __future__ import annotations

import os
import struct
from array import array
from pathlib import Path

import numpy as np

from mmtok.storage import CommitOnExit, temporary_name

MAGIC = b"MMIDIDX\x00\x00"
VERSION = 1
HEADER = struct.Struct("<9sQBQQ")  # magic, version, dtype code, sequence count, document-index length: 34 bytes
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
    """uint16 while every id fits (vocab_size <= 65,536), int32 beyond. Megatron's own
    `DType.optimal_dtype` switches a little earlier (below 65,500); its reader takes either."""
    return np.dtype(np.uint16) if vocab_size <= 2**16 else np.dtype(np.int32)


def paths(prefix: str | Path) -> tuple[Path, Path]:
    prefix = Path(prefix)
    return prefix.with_name(prefix.name + ".bin"), prefix.with_name(prefix.name + ".idx")


class IndexedDatasetWriter(CommitOnExit):
    """Streams sequences into PREFIX.bin; writes PREFIX.idx when the `with` block ends cleanly.
    Both are written under temporary names and renamed at the end (.idx last), so a job that dies
    leaves no half dataset; a block that raises removes the temporaries."""

    def __init__(self, prefix: str | Path, dtype):
        self.dtype = np.dtype(dtype)
        if self.dtype not in DTYPE_CODES or self.dtype.kind not in "iu":
            raise ValueError(f"ids are stored as one of megatron's integer dtypes, not {self.dtype}")
        info = np.iinfo(self.dtype)
        self.low, self.high = int(info.min), int(info.max)
        self.finals = paths(prefix)
        self.finals[0].parent.mkdir(parents=True, exist_ok=True)
        self.temporaries = [final.with_name(temporary_name(final.name)) for final in self.finals]
        self.bin = open(self.temporaries[0], "wb", buffering=1 << 20)
        self.lengths = array("q")  # compact: 8 bytes a sequence, not a Python int object each
        self.document_indices = array("q", [0])

    def add_sequence(self, ids) -> None:
        ids = np.asarray(ids)
        if ids.ndim != 1:
            raise ValueError(f"a sequence is 1-D, got shape {ids.shape}")
        self._check(ids)
        if ids.size > np.iinfo(np.int32).max:
            raise ValueError(f"a sequence of {ids.size} ids is longer than megatron's int32 lengths allow")
        self.bin.write(ids.astype(self.dtype, copy=False).tobytes())
        self.lengths.append(ids.size)

    def add_documents(self, ids: np.ndarray, lengths: np.ndarray) -> None:
        """Many one-sequence documents at once (what `mmtok pack` writes): their ids back to back,
        and their lengths."""
        ids, lengths = np.asarray(ids), np.asarray(lengths, dtype=np.int64)
        if ids.ndim != 1 or int(lengths.sum()) != ids.size or (lengths < 1).any():
            raise ValueError("lengths must be positive and add up to the ids given")
        self._check(ids)
        if lengths.size and lengths.max() > np.iinfo(np.int32).max:
            raise ValueError("a sequence is longer than megatron's int32 lengths allow")
        self.bin.write(ids.astype(self.dtype, copy=False).tobytes())
        first = len(self.lengths)
        self.lengths.extend(lengths.tolist())
        self.document_indices.extend(range(first + 1, len(self.lengths) + 1))

    def _check(self, ids: np.ndarray) -> None:
        if ids.size:
            if ids.dtype.kind not in "iu":
                raise ValueError(f"ids must be integers, got {ids.dtype}")
            low, high = int(ids.min()), int(ids.max())
            if low < self.low or high > self.high:
                bad = low if low < self.low else high
                raise ValueError(f"id {bad} does not fit {self.dtype.name} (ids {self.low}..{self.high})")

    def end_document(self) -> None:
        """Ends the document made of the sequences added since the last end."""
        if self.document_indices[-1] == len(self.lengths):
            raise ValueError("a document needs at least one sequence")
        self.document_indices.append(len(self.lengths))

    def add_document(self, ids) -> None:
        """One sequence that is a whole document (the unit GPTDataset reads)."""
        self.add_sequence(ids)
        self.end_document()

    def close(self) -> None:
        if self.document_indices[-1] != len(self.lengths):
            self.end_document()  # sequences added after the last end_document form the last document
        self.bin.close()
        lengths = np.frombuffer(self.lengths, np.int64)
        pointers = np.zeros(len(lengths), np.int64)
        np.cumsum(lengths[:-1] * self.dtype.itemsize, out=pointers[1:])
        with open(self.temporaries[1], "wb") as idx:
            idx.write(HEADER.pack(MAGIC, VERSION, DTYPE_CODES[self.dtype], len(lengths), len(self.document_indices)))
            idx.write(lengths.astype("<i4").tobytes())
            idx.write(pointers.astype("<i8", copy=False).tobytes())
            idx.write(np.frombuffer(self.document_indices, np.int64).astype("<i8", copy=False).tobytes())
        # An older dataset's .idx goes first: never a new .bin beside an old .idx that happens to fit it.
        self.finals[1].unlink(missing_ok=True)
        for temporary, final in zip(self.temporaries, self.finals):
            os.replace(temporary, final)

    def abort(self) -> None:
        self.bin.close()
        for temporary in self.temporaries:
            temporary.unlink(missing_ok=True)


class IndexedDatasetReader:
    """Reads PREFIX.bin/.idx with memory maps, checking them against each other first.
    `reader[i]` is sequence i (a read-only view); `documents()` yields each document's sequences
    concatenated; `sequence_modes` is None unless the index carries megatron's multimodal flags."""

    def __init__(self, prefix: str | Path):
        bin_path, idx_path = paths(prefix)
        with open(idx_path, "rb") as idx:
            header = idx.read(HEADER.size)
        if header[: len(MAGIC)] != MAGIC:
            raise ValueError(f"{idx_path} is not a megatron index (no MMIDIDX header)")
        if len(header) < HEADER.size:
            raise ValueError(f"{idx_path} is truncated: {len(header)} bytes, shorter than its header")
        _, version, code, sequences, documents = HEADER.unpack(header)
        if version != VERSION:
            raise ValueError(f"{idx_path}: index version {version}, this reader knows {VERSION}")
        if code not in CODE_DTYPES:
            raise ValueError(f"{idx_path}: unknown dtype code {code} (known: {sorted(CODE_DTYPES)})")
        self.dtype = CODE_DTYPES[code]
        expected, size = HEADER.size + sequences * (4 + 8) + documents * 8, idx_path.stat().st_size
        if size not in (expected, expected + sequences):  # + sequences: the optional int8 modes
            raise ValueError(f"{idx_path} holds {size} bytes, its header's counts need {expected}: truncated?")
        index = np.memmap(idx_path, mode="r", dtype=np.uint8)
        self.sequence_lengths = np.frombuffer(index, "<i4", sequences, HEADER.size)
        self.sequence_pointers = np.frombuffer(index, "<i8", sequences, HEADER.size + sequences * 4)
        self.document_indices = np.frombuffer(index, "<i8", documents, HEADER.size + sequences * 12)
        self.sequence_modes = np.frombuffer(index, np.int8, sequences, expected) if size > expected else None
        ends = self.document_indices
        if len(ends) == 0 or ends[0] != 0 or ends[-1] != sequences or np.any(np.diff(ends) < 0):
            raise ValueError(f"{idx_path}: document_indices must rise from 0 to the sequence count {sequences}")
        offsets = np.cumsum(self.sequence_lengths, dtype=np.int64) * self.dtype.itemsize
        if np.any(self.sequence_pointers[1:] != offsets[:-1]) or (sequences and self.sequence_pointers[0] != 0):
            raise ValueError(f"{idx_path}: sequence_pointers are not the running byte offsets of sequence_lengths")
        needed = int(offsets[-1]) if sequences else 0
        if bin_path.stat().st_size != needed:
            raise ValueError(
                f"{bin_path} holds {bin_path.stat().st_size} bytes, its index describes {needed}: "
                "truncated or mismatched"
            )
        self.data = np.memmap(bin_path, mode="r", dtype=self.dtype) if needed else np.zeros(0, self.dtype)

    def __len__(self) -> int:
        return len(self.sequence_lengths)

    def __getitem__(self, i: int) -> np.ndarray:
        start = int(self.sequence_pointers[i]) // self.dtype.itemsize
        return self.data[start : start + int(self.sequence_lengths[i])]

    def documents(self):
        """Each document's ids (its sequences concatenated into one array), in order."""
        for first, stop in zip(self.document_indices[:-1], self.document_indices[1:]):
            yield np.concatenate([self[i] for i in range(first, stop)])
