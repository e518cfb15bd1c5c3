"""Packed rows as parquet files that Hugging Face `datasets` (and torchtitan, pyarrow, DuckDB) read:

    input_ids         list<uint16 | int32>   exactly seq_len ids, padding at the end
    attention_mask    list<int8>             1 on ids, 0 on padding
    position_ids      list<int32>            restarting at 0 at each document (for packed attention)
    document_lengths  list<int32>            the lengths of the document pieces in the row (cu_seqlens)

Files are `part-000000.parquet`, ... of at most `rows_per_file` rows each, written under temporary
names and renamed when complete, so a job that dies leaves no truncated part behind a final name.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from mmtok.packing import PackedRows
from mmtok.storage import CommitOnExit, temporary_name

ROW_GROUP = 1024  # rows per parquet row group: small enough to stream, large enough to compress


def part_name(index: int) -> str:
    return f"part-{index:06d}.parquet"


class PackedParquetWriter(CommitOnExit):
    def __init__(self, folder: Path, dtype: str, rows_per_file: int = 10_000):
        import pyarrow as pa

        self.folder, self.dtype, self.rows_per_file = Path(folder), dtype, rows_per_file
        self.folder.mkdir(parents=True, exist_ok=True)
        self.schema = pa.schema(
            [
                ("input_ids", pa.list_(getattr(pa, dtype)())),
                ("attention_mask", pa.list_(pa.int8())),
                ("position_ids", pa.list_(pa.int32())),
                ("document_lengths", pa.list_(pa.int32())),
            ]
        )
        self.files: list[str] = []
        self.writer = None
        self.rows_in_file = 0

    def add(self, rows: PackedRows) -> None:
        while len(rows):
            room = self.rows_per_file - self.rows_in_file
            head, rows = _slice(rows, 0, room), _slice(rows, room, len(rows))
            self._write(head)

    def close(self) -> list[str]:
        self._finish_file()
        return self.files

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.close()
            os.unlink(self._temporary)
            self.writer = None

    def _write(self, rows: PackedRows) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.writer is None:
            self._final = self.folder / part_name(len(self.files))
            self._temporary = self.folder / temporary_name(self._final.name)
            # No dictionary pages: ids are high-entropy, and building them took half of pack's time.
            self.writer = pq.ParquetWriter(self._temporary, self.schema, compression="zstd", use_dictionary=False)
        offsets = np.concatenate([[0], np.cumsum(rows.pieces_per_row)]).astype(np.int32)
        columns = {
            "input_ids": _fixed_lists(rows.ids.astype(self.dtype)),
            "attention_mask": _fixed_lists(rows.attention_mask()),
            "position_ids": _fixed_lists(rows.position_ids().astype(np.int32)),
            "document_lengths": pa.ListArray.from_arrays(
                pa.array(offsets), pa.array(rows.piece_lengths.astype(np.int32))
            ),
        }
        self.writer.write_table(pa.table(columns, schema=self.schema), row_group_size=ROW_GROUP)
        self.rows_in_file += len(rows)
        if self.rows_in_file >= self.rows_per_file:
            self._finish_file()

    def _finish_file(self) -> None:
        if self.writer is None:
            return
        self.writer.close()
        os.replace(self._temporary, self._final)
        self.files.append(self._final.name)
        self.writer, self.rows_in_file = None, 0


def _fixed_lists(matrix: np.ndarray):
    """A (rows, width) array as an arrow list column, without a Python list per row."""
    import pyarrow as pa

    rows, width = matrix.shape
    offsets = pa.array(np.arange(0, (rows + 1) * width, width, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(matrix.reshape(-1)))


def _slice(rows: PackedRows, start: int, stop: int) -> PackedRows:
    """Rows start..stop of a batch, with their pieces."""
    bounds = np.concatenate([[0], np.cumsum(rows.pieces_per_row)])
    stop = min(stop, len(rows))
    return PackedRows(
        rows.ids[start:stop],
        rows.piece_lengths[bounds[min(start, len(rows))] : bounds[stop]],
        rows.pieces_per_row[start:stop],
    )
