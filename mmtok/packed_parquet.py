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

from mmtok.packing import PackedRow, position_ids
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
        self.pending: list[PackedRow] = []
        self.writer = None
        self.rows_in_file = 0

    def add(self, row: PackedRow) -> None:
        self.pending.append(row)
        if len(self.pending) >= ROW_GROUP or self.rows_in_file + len(self.pending) >= self.rows_per_file:
            self._flush()

    def close(self) -> list[str]:
        self._flush()
        self._finish_file()
        return self.files

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.close()
            os.unlink(self._temporary)
            self.writer = None

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        while self.pending:
            room = self.rows_per_file - self.rows_in_file
            rows, self.pending = self.pending[:room], self.pending[room:]
            if self.writer is None:
                self._final = self.folder / part_name(len(self.files))
                self._temporary = self.folder / temporary_name(self._final.name)
                self.writer = pq.ParquetWriter(self._temporary, self.schema, compression="zstd")
            ids = np.stack([row.ids for row in rows])
            mask = np.ones(ids.shape, dtype=np.int8)
            for r, row in enumerate(rows):
                mask[r, sum(row.lengths) :] = 0
            columns = {
                "input_ids": _fixed_lists(ids.astype(self.dtype)),
                "attention_mask": _fixed_lists(mask),
                "position_ids": _fixed_lists(np.stack([position_ids(row) for row in rows]).astype(np.int32)),
                "document_lengths": pa.array([row.lengths for row in rows], pa.list_(pa.int32())),
            }
            self.writer.write_table(pa.table(columns, schema=self.schema))
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
