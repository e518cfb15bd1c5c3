"""A Hugging Face `datasets` dataset as a media source: "datasets:NAME_OR_PATH[:SPLIT]".

NAME_OR_PATH is a hub id, a local folder `datasets.load_dataset` reads (imagefolder, audiofolder,
parquet, ...) or a folder written by `Dataset.save_to_disk`. Items are one column's encoded bytes,
read with the column's Image / Audio feature switched to decode=False, so mmtok's own input path
decodes them as it decodes files (a row that holds only a file path is read through fsspec).

Non-streaming datasets are memory-mapped Arrow tables with random access, for training and
tokenizing alike. A streamed dataset (`streaming=True`, for datasets too large to download first)
is read in order: each reading process keeps its place in the stream and skips ahead to the item
it is asked for, so tokenizing reads it once per DataLoader worker and a restarted job re-reads,
without decoding, the part before its first unfinished shard. Its length is `limit` or the number
of rows the dataset's card records.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

from mmtok.data.sources import PassedOver
from mmtok.modalities import modality as modality_entry
from mmtok.storage import resolve

SAVED_DATASET_FILES = ("dataset_info.json", "dataset_dict.json", "state.json")  # written by save_to_disk


def parse_name(name: str, split: str | None) -> tuple[str, str]:
    """ "NAME[:SPLIT]" and a split given apart -> (name, split); the split defaults to "train"."""
    head, sep, tail = name.rpartition(":")
    if sep and head and tail and "/" not in tail:
        if split is not None and split != tail:
            raise ValueError(f"datasets:{name} names split {tail!r} but split={split!r} was given")
        name, split = head, tail
    return name, split or "train"


class DatasetsSource:
    """One column of a `datasets` dataset's split as encoded media (the source protocol of
    mmtok.data.sources: len, read, describe, key)."""

    def __init__(
        self,
        name: str,
        *,
        modality: str,
        column: str | None = None,
        split: str | None = None,
        streaming: bool = False,
        limit: int | None = None,
    ):
        self.name, self.split = parse_name(name, split)
        self.streaming = streaming
        dataset = self._load()
        features = dataset.features or {}
        candidates = modality_entry(modality).parquet_columns
        self.column = column or next((c for c in candidates if c in features), None)
        if self.column not in features:
            raise ValueError(
                f"datasets:{self.name} ({self.split}) has no {modality} column "
                f"{column or candidates}; columns: {list(features)}; pass column="
            )
        self._dataset = self._undecoded(dataset, features[self.column])
        self._length = self._count(dataset, limit)
        self._stream, self._position = None, 0
        self.passed_over = PassedOver()  # every row is an item: a row without media is an error, not a skip
        # Changes whenever the dataset's files or processing do (None for a streamed one).
        self._version = getattr(dataset, "_fingerprint", None)

    def _load(self):
        import datasets

        path = Path(self.name)
        if path.is_dir() and any((path / f).is_file() for f in SAVED_DATASET_FILES):
            if self.streaming:
                raise ValueError(f"{self.name} was written by save_to_disk: it is read in place, not streamed")
            loaded = datasets.load_from_disk(str(path))
            if isinstance(loaded, datasets.DatasetDict):
                if self.split not in loaded:
                    raise ValueError(f"{self.name} has splits {list(loaded)}, not {self.split!r}")
                loaded = loaded[self.split]
            return loaded
        return datasets.load_dataset(self.name, split=self.split, streaming=self.streaming)

    def _undecoded(self, dataset, feature):
        import datasets

        if isinstance(feature, (datasets.Image, datasets.Audio)):
            return dataset.cast_column(self.column, type(feature)(decode=False))
        if getattr(feature, "dtype", None) in ("binary", "large_binary"):
            return dataset
        raise ValueError(f"column {self.column!r} of datasets:{self.name} holds {feature}, not encoded media")

    def _count(self, dataset, limit: int | None) -> int:
        if not self.streaming:
            return len(dataset) if limit is None else min(limit, len(dataset))
        if limit is not None:
            return limit
        splits = dataset.info.splits or {}
        rows = splits[self.split].num_examples if self.split in splits else None
        if not rows:
            raise ValueError(f"datasets:{self.name} is streamed and its card records no row count: give a limit")
        return rows

    def __len__(self) -> int:
        return self._length

    def _value(self, i: int):
        if not self.streaming:
            return self._dataset[i][self.column]
        if self._stream is None or i < self._position:  # a fresh stream, started at item i
            self._stream, self._position = self._values_from(i), i
        while self._position < i:  # items other workers decode: read past them
            next(self._stream)
            self._position += 1
        self._position += 1
        return next(self._stream)

    def _values_from(self, start: int):
        # `iter` in batches: unlike iter(dataset), it does not hand each DataLoader worker a share
        # of the data files, which would leave every worker a different stream.
        for batch in self._dataset.skip(start).iter(batch_size=64):
            yield from batch[self.column]

    def read(self, i: int) -> bytes:
        if not 0 <= i < len(self):
            raise IndexError(f"item {i} out of range for {len(self)} items")
        value = self._value(i)
        if isinstance(value, dict):  # an Image / Audio cell: {"bytes", "path"}
            if value.get("bytes") is not None:
                return value["bytes"]
            if value.get("path"):
                storage, path = resolve(value["path"])
                return storage.read(path)
            raise ValueError("the cell holds neither bytes nor a path")
        if value is None:
            raise ValueError("null media bytes")
        return value

    def open(self, i: int) -> BinaryIO:
        return io.BytesIO(self.read(i))

    def fingerprint(self, i: int) -> str:
        return str(self._version)

    def describe(self, i: int) -> str:
        return f"datasets:{self.name}[{self.split}, {self.column}, row {i}]"

    def key(self, i: int) -> str:
        return f"{self.split}/{i}"
