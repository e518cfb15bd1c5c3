"""The text that goes with each tokenized item in `mmtok pack`: a caption or transcript.

Two kinds of source:
- a table (.parquet, .jsonl/.json, .csv, local or an fsspec URL, or datasets:NAME[:SPLIT]) with a
  text column; rows are matched to shard rows by a key column when the table has one (the shard's
  `key`, e.g. the media file's path inside the tokenized folder), otherwise by row number (the
  shard's `index`: right when the table is the very parquet file or dataset that was tokenized);
- a file beside each media file with the same name and another suffix (`clip.wav` -> `clip.txt`).
"""

from __future__ import annotations

from pathlib import PurePosixPath

from mmtok.storage import resolve

TEXT_COLUMNS = ("text", "caption", "transcript", "transcription", "sentence")  # tried in order
KEY_COLUMN = "key"


class TableText:
    """Texts of a table, by key or by row number."""

    def __init__(self, spec: str, column: str | None = None, key_column: str = KEY_COLUMN):
        self.spec = spec
        table = _read_table(spec)
        names = table.column_names
        self.column = column or next((c for c in TEXT_COLUMNS if c in names), None)
        if self.column not in names:
            raise ValueError(f"{spec} has no text column {column or list(TEXT_COLUMNS)}; its columns: {names}")
        texts = table.column(self.column).to_pylist()
        self.by_key = None
        if key_column in names:
            keys = [str(k) for k in table.column(key_column).to_pylist()]
            if len(set(keys)) != len(keys):
                raise ValueError(f"{spec}: column {key_column!r} repeats keys")
            self.by_key = dict(zip(keys, texts))
        self.by_index = texts
        self.matched_by = f"column {key_column!r}" if self.by_key is not None else "row number"

    def text(self, key: str, index: int, source: str) -> str | None:
        if self.by_key is not None:
            return self.by_key.get(key)
        return self.by_index[index] if 0 <= index < len(self.by_index) else None

    def describe(self) -> dict:
        return {"kind": "table", "spec": self.spec, "column": self.column, "matched_by": self.matched_by}


class SidecarText:
    """The text file beside each media file: `source` with its suffix replaced."""

    def __init__(self, suffix: str = ".txt"):
        self.suffix = suffix if suffix.startswith(".") else f".{suffix}"

    def text(self, key: str, index: int, source: str) -> str | None:
        if "::" in source or source.endswith("]"):  # a tar member or a table row: no file beside it
            raise ValueError(f"{source} is not a plain media file: a text file beside it cannot exist")
        storage, path = resolve(source)
        sidecar = path.with_name(PurePosixPath(path.name).stem + self.suffix)
        if not storage.exists(sidecar):
            return None
        return storage.read(sidecar).decode("utf-8").strip()

    def describe(self) -> dict:
        return {"kind": "files", "suffix": self.suffix}


def _read_table(spec: str):
    """A pyarrow table from a local or remote file, or from a `datasets` split."""
    if spec.startswith("datasets:"):
        import datasets

        from mmtok.data.hf_datasets import parse_name

        name, split = parse_name(spec[len("datasets:") :], None)
        return datasets.load_dataset(name, split=split).data.table
    storage, path = resolve(spec)
    if not storage.exists(path):
        raise FileNotFoundError(f"text table {spec} does not exist")
    suffix = path.suffix.lower()
    with storage.open(path) as f:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(f)
        if suffix in (".jsonl", ".json"):
            import pyarrow.json as pj

            return pj.read_json(f)
        if suffix == ".csv":
            import pyarrow.csv as pc

            return pc.read_csv(f)
    raise ValueError(f"text table {spec}: expected .parquet, .jsonl, .json or .csv (or datasets:NAME)")


def open_text(spec: str | None, *, column: str | None = None, key_column: str = KEY_COLUMN, files: str | None = None):
    """The text source `mmtok pack` reads, or None for media alone."""
    if spec and files:
        raise ValueError("give either a text table or text files beside the media, not both")
    if files:
        return SidecarText(files)
    return TableText(spec, column, key_column) if spec else None
