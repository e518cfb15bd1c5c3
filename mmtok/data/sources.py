"""Where encoded media come from: a folder, a glob, webdataset-style tars, or parquet files, on
local disk or wherever an fsspec URL points (s3://, gs://, hf://, http(s)://, ...), or a Hugging
Face `datasets` dataset ("datasets:NAME_OR_PATH", mmtok.data.hf_datasets).

Every source is a sorted, indexable list of items. `read(i)` returns item i's encoded bytes (a
file's contents, a tar member, a parquet cell) without decoding it, and `open(i)` a file object
over them (the file itself for plain files, so a long recording is read piece by piece);
`describe(i)` says where it lives (for error reports), `key(i)` names it uniquely within the source
and `fingerprint(i)` changes when the item is replaced (size and modification time or version).
Indexing never decodes, so listing a few million files costs one directory walk (one listing on
an object store). Nothing is left out in silence: symbolic links to files and folders are
followed (loops walked once), a link whose target is missing stays an item (reading it is an
error that names it), and every file passed over is counted by reason in `passed_over` (a
`PassedOver`: other extensions, link loops, non-files). Sources hold a `mmtok.storage.Storage`,
which DataLoader workers inherit safely.
"""

from __future__ import annotations

import bisect
import glob
import io
import itertools
import os
import tarfile
from pathlib import Path, PurePath
from typing import BinaryIO

from mmtok.modalities import MODALITIES
from mmtok.modalities import modality as modality_entry
from mmtok.storage import Storage, resolve


def _has_extension(name: str, extensions: tuple[str, ...]) -> bool:
    return name.lower().endswith(extensions)


class PassedOver:
    """What a listing left out, by reason: a count and the first few places for each reason."""

    EXAMPLES = 5

    def __init__(self):
        self.counts: dict[str, int] = {}
        self.examples: dict[str, list[str]] = {}

    def add(self, where: str, why: str) -> None:
        self.counts[why] = self.counts.get(why, 0) + 1
        shown = self.examples.setdefault(why, [])
        if len(shown) < self.EXAMPLES:
            shown.append(where)

    def other_extension(self, where: str, name: str, extensions: tuple[str, ...] = ()) -> None:
        # Data files a header names and its reader opens beside it (BrainVision .eeg, WFDB .dat).
        companions = next((m.companion_extensions for m in MODALITIES.values() if m.extensions == extensions), ())
        if companions and _has_extension(name, companions):
            self.add(where, "companion data file (read with its header file)")
        else:
            self.add(where, f"other extension ({PurePath(name).suffix.lower() or 'none'})")

    def merge(self, *others: PassedOver) -> PassedOver:
        for other in others:
            for why, count in other.counts.items():
                self.counts[why] = self.counts.get(why, 0) + count
                shown = self.examples.setdefault(why, [])
                shown += other.examples[why][: self.EXAMPLES - len(shown)]
        return self

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_json(self) -> dict:
        return {why: {"count": self.counts[why], "examples": self.examples[why]} for why in sorted(self.counts)}


def _join_key(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


class FileListSource:
    """Plain files; keys are their paths relative to `root`."""

    def __init__(
        self,
        paths: list[PurePath],
        root: PurePath,
        storage: Storage | None = None,
        fingerprints: dict | None = None,
        passed_over: PassedOver | None = None,
    ):
        self.root, self.storage = root, storage or Storage.local()
        self.paths = sorted(paths, key=lambda p: p.relative_to(root).as_posix())
        self._fingerprints = fingerprints
        self.passed_over = passed_over or PassedOver()

    def __len__(self) -> int:
        return len(self.paths)

    def read(self, i: int) -> bytes:
        return self.storage.read(self._readable(i))

    def open(self, i: int) -> BinaryIO:
        return self.storage.open(self._readable(i))

    def _readable(self, i: int) -> PurePath:
        path = self.paths[i]
        if self.storage.is_local and Path(path).is_symlink() and not Path(path).exists():
            raise FileNotFoundError(f"dangling symbolic link: its target {os.readlink(path)} does not exist")
        return path

    def describe(self, i: int) -> str:
        return self.storage.url(self.paths[i])

    def local_path(self, i: int) -> Path:
        return self.paths[i]

    def key(self, i: int) -> str:
        return self.paths[i].relative_to(self.root).as_posix()

    def fingerprint(self, i: int) -> str:
        if self._fingerprints is None:  # listed without details: asked for once per item
            self._fingerprints = {}
        path = self.paths[i]
        if path not in self._fingerprints:
            self._fingerprints[path] = self.storage.fingerprint(path)
        return str(self._fingerprints[path])


class FolderSource(FileListSource):
    """A folder searched recursively (symbolic links followed) for files with one of `extensions`,
    sorted by path relative to `root` (default: the folder itself); other files are counted."""

    def __init__(
        self,
        folder: PurePath,
        extensions: tuple[str, ...],
        storage: Storage | None = None,
        root: PurePath | None = None,
    ):
        storage = storage or Storage.local()
        listing = storage.list_files(folder)
        passed_over = PassedOver()
        for where, why in listing.passed_over:
            passed_over.add(where, why)
        files = []
        for path in listing.files:
            if _has_extension(path.name, extensions):
                files.append(path)
            else:
                passed_over.other_extension(storage.url(path), path.name, extensions)
        super().__init__(files, folder if root is None else root, storage, listing.fingerprints, passed_over)


class TarSource:
    """An uncompressed (webdataset-style) tar; members are read by byte offset, so every DataLoader
    worker just seeks in the file (a ranged request on an object store)."""

    def __init__(self, path: PurePath, extensions: tuple[str, ...], prefix: str = "", storage: Storage | None = None):
        self.path, self.prefix, self.storage = path, prefix, storage or Storage.local()
        self.passed_over = PassedOver()
        members = []
        try:
            with self.storage.open(path) as f, tarfile.open(fileobj=f, mode="r:") as tar:
                for m in tar:
                    where = f"{self.storage.url(path)}::{m.name}"
                    if m.isdir():
                        continue
                    if not m.isreg():
                        self.passed_over.add(where, "tar member that is a link or special file")
                    elif _has_extension(m.name, extensions):
                        members.append((m.name, m.offset_data, m.size))
                    else:
                        self.passed_over.other_extension(where, m.name, extensions)
        except tarfile.ReadError as err:
            raise ValueError(f"{path} is not an uncompressed tar archive (webdataset shard): {err}") from err
        self.members = sorted(members)
        self._tar_fingerprint = self.storage.fingerprint(path)

    def __len__(self) -> int:
        return len(self.members)

    def read(self, i: int) -> bytes:
        _, offset, size = self.members[i]
        data = self.storage.read(self.path, offset, size)
        if len(data) != size:
            raise ValueError(f"tar member is truncated: {len(data)} of {size} bytes")
        return data

    def open(self, i: int) -> BinaryIO:
        return io.BytesIO(self.read(i))

    def fingerprint(self, i: int) -> str:
        return f"{self._tar_fingerprint}@{self.members[i][1]}"

    def describe(self, i: int) -> str:
        return f"{self.storage.url(self.path)}::{self.members[i][0]}"

    def key(self, i: int) -> str:
        return _join_key(self.prefix, self.members[i][0])


class ParquetSource:
    """One column of encoded media: plain binary, or a Hugging Face Image/Audio struct whose
    `bytes` field holds them.

    in_memory=True loads the column once (random sampling for training would otherwise
    decompress a whole row group per item); in_memory=False reads one row group at a time and
    keeps the last one, for sequential passes over files larger than memory.
    """

    def __init__(
        self,
        path: PurePath,
        column: str | None,
        *,
        candidates: tuple[str, ...] = MODALITIES["image"].parquet_columns,
        in_memory: bool = True,
        prefix: str = "",
        storage: Storage | None = None,
    ):
        import pyarrow.parquet as pq

        self.path, self.prefix, self.storage = path, prefix, storage or Storage.local()
        self.passed_over = PassedOver()
        self._file_fingerprint = self.storage.fingerprint(path)
        schema = pq.read_schema(str(path), filesystem=self.storage.arrow_filesystem())
        if column is None:
            column = next((c for c in candidates if c in schema.names), None)
            if column is None:
                raise ValueError(f"{path} has no media column {candidates}; columns: {schema.names}; pass column=")
        elif column not in schema.names:
            raise ValueError(f"{path} has no column {column!r}; columns: {schema.names}")
        self.column = column
        self._check_type(schema.field(column).type)
        metadata = self._file().metadata
        sizes = [metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)]
        self._group_starts = [0, *itertools.accumulate(sizes)]
        self.values = self._read_column(None) if in_memory else None
        self._cached_group: tuple[int, object] | None = None

    def _file(self):
        import pyarrow.parquet as pq

        return pq.ParquetFile(str(self.path), filesystem=self.storage.arrow_filesystem())

    def _check_type(self, type_) -> None:
        import pyarrow as pa

        if pa.types.is_struct(type_):
            names = [type_.field(k).name for k in range(type_.num_fields)]
            if "bytes" not in names:
                raise ValueError(f"struct column {self.column!r} in {self.path} has no 'bytes' field: {names}")
            type_ = type_.field("bytes").type
        if not (pa.types.is_binary(type_) or pa.types.is_large_binary(type_)):
            raise ValueError(f"column {self.column!r} in {self.path} holds {type_}, not encoded media bytes")

    def _read_column(self, row_group: int | None):
        """The column (or one row group of it) as a chunked array of bytes."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if row_group is None:
            filesystem = self.storage.arrow_filesystem()
            values = pq.read_table(str(self.path), columns=[self.column], filesystem=filesystem).column(self.column)
        else:
            values = self._file().read_row_group(row_group, columns=[self.column]).column(self.column)
        if pa.types.is_struct(values.type):
            k = values.type.get_field_index("bytes")
            values = pa.chunked_array([chunk.flatten()[k] for chunk in values.chunks], type=values.type.field(k).type)
        return values

    def __len__(self) -> int:
        return self._group_starts[-1]

    def read(self, i: int) -> bytes:
        if self.values is not None:
            data = self.values[i].as_py()
        else:
            group = bisect.bisect_right(self._group_starts, i) - 1
            if self._cached_group is None or self._cached_group[0] != group:
                self._cached_group = (group, self._read_column(group))
            data = self._cached_group[1][i - self._group_starts[group]].as_py()
        if data is None:
            raise ValueError("null media bytes")
        return data

    def open(self, i: int) -> BinaryIO:
        return io.BytesIO(self.read(i))

    def fingerprint(self, i: int) -> str:
        return str(self._file_fingerprint)

    def describe(self, i: int) -> str:
        return f"{self.storage.url(self.path)}[{self.column}, row {i}]"

    def key(self, i: int) -> str:
        return _join_key(self.prefix, str(i))


class ConcatSource:
    """Several sources one after another (a glob matching many tars or parquet files)."""

    def __init__(self, parts: list, passed_over: PassedOver | None = None):
        self.passed_over = (passed_over or PassedOver()).merge(*(p.passed_over for p in parts))
        self.parts = [p for p in parts if len(p)]
        self._starts = [0, *itertools.accumulate(len(p) for p in self.parts)]

    def __len__(self) -> int:
        return self._starts[-1]

    def _locate(self, i: int):
        if not 0 <= i < len(self):
            raise IndexError(f"item {i} out of range for {len(self)} items")
        part = bisect.bisect_right(self._starts, i) - 1
        return self.parts[part], i - self._starts[part]

    def read(self, i: int) -> bytes:
        part, j = self._locate(i)
        return part.read(j)

    def open(self, i: int) -> BinaryIO:
        part, j = self._locate(i)
        return part.open(j)

    def fingerprint(self, i: int) -> str:
        part, j = self._locate(i)
        return part.fingerprint(j)

    def describe(self, i: int) -> str:
        part, j = self._locate(i)
        return part.describe(j)

    def key(self, i: int) -> str:
        part, j = self._locate(i)
        return part.key(j)

    def local_path(self, i: int) -> Path | None:
        part, j = self._locate(i)
        return part.local_path(j) if hasattr(part, "local_path") else None


def open_source(
    spec: str | Path,
    *,
    modality: str = "image",
    column: str | None = None,
    in_memory: bool = True,
    split: str | None = None,
    streaming: bool = False,
    limit: int | None = None,
):
    """A folder (recursive, by the modality's extensions), a .tar, a .parquet, or a glob matching
    any of those and plain media files, each local or at an fsspec URL -> one source with items in
    a deterministic order. "datasets:NAME_OR_PATH[:SPLIT]" is a Hugging Face dataset (see
    mmtok.data.hf_datasets; `split`, `streaming` and `limit` apply to it)."""
    if str(spec).startswith(DATASETS_PREFIX):
        from mmtok.data.hf_datasets import DatasetsSource

        name = str(spec)[len(DATASETS_PREFIX) :]
        return DatasetsSource(name, modality=modality, column=column, split=split, streaming=streaming, limit=limit)
    if split is not None or streaming:
        raise ValueError(f"split and streaming are for {DATASETS_PREFIX}NAME sources, not {spec}")
    extensions = modality_entry(modality).extensions
    storage, path = resolve(spec)
    if glob.has_magic(str(path)):
        matches = storage.glob(path)
        if not matches:
            raise FileNotFoundError(f"no files match {spec}")
        # Keys are relative to the folder the pattern starts from, so they stay unique.
        first_magic = next(i for i, part in enumerate(path.parts) if glob.has_magic(part))
        root = type(path)(*path.parts[:first_magic]) if first_magic else type(path)(".")
        folders = {m for m in matches if storage.isdir(m)}
        containers = [m for m in matches if m in folders or m.suffix.lower() in (".tar", ".parquet")]
        files, passed_over = [], PassedOver()
        for match in matches:
            if _has_extension(match.name, extensions) and match not in folders:
                files.append(match)
            elif match not in containers:
                passed_over.other_extension(storage.url(match), match.name, extensions)
        parts = [FileListSource(files, root, storage)] if files else []
        parts += [_open_one(storage, c, root, extensions, modality, column, in_memory) for c in containers]
        return ConcatSource(parts, passed_over)
    if not storage.exists(path):
        raise FileNotFoundError(f"media source {spec} does not exist")
    root = path if storage.isdir(path) else path.parent
    return _open_one(storage, path, root, extensions, modality, column, in_memory)


DATASETS_PREFIX = "datasets:"


def _open_one(storage: Storage, path, root, extensions, modality: str, column: str | None, in_memory: bool):
    """One folder, tar or parquet file; keys are relative to `root`."""
    if column is not None and path.suffix.lower() != ".parquet":
        raise ValueError("column= only applies to .parquet and datasets: sources")
    if storage.isdir(path):
        return FolderSource(path, extensions, storage, root=root)
    prefix = os.path.relpath(path, root) if storage.is_local else path.relative_to(root).as_posix()
    if path.suffix.lower() == ".tar":
        return TarSource(path, extensions, prefix, storage)
    if path.suffix.lower() == ".parquet":
        candidates = modality_entry(modality).parquet_columns
        return ParquetSource(path, column, candidates=candidates, in_memory=in_memory, prefix=prefix, storage=storage)
    raise ValueError(f"unsupported media source {path}: expected a folder, a .tar or a .parquet file")
