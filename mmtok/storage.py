"""Files wherever datasets live: a local path, or an fsspec URL (s3://, gs://, az://, hf://,
http(s)://, ...). One small interface serves reading media (mmtok.data.sources) and writing
shards (mmtok.shards, mmtok.tokenize), so the tokenize job has one code path for every store.

Local paths stay plain paths (keys, messages and manifests read as before) and go through the
OS directly where it matters (fsync and an atomic rename); URLs go through fsspec. A `Folder`
writes a file so it is whole or absent: local files are written under a temporary name, synced
and renamed; on an object store they are uploaded under a temporary key and then copied to the
final key server-side (an object store has no rename; a copy is all-or-nothing), so a file
exists only once committed, and a restarted job redoes exactly what was never committed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import BinaryIO

TMP_SUFFIX = ".tmp"


def is_url(location: str | Path) -> bool:
    return isinstance(location, str) and "://" in location


class Storage:
    """An fsspec filesystem that DataLoader workers can inherit. Async clients (s3fs, gcsfs) run an
    event loop that does not survive a fork, so a forked process rebuilds the client from the
    same arguments (fsspec keeps them for exactly this); pickling (spawn) rebuilds it anyway."""

    def __init__(self, fs):
        self._fs, self._pid = fs, os.getpid()

    @classmethod
    def local(cls) -> Storage:
        from fsspec.implementations.local import LocalFileSystem

        return cls(LocalFileSystem())

    @property
    def fs(self):
        if self._pid != os.getpid():
            self._fs, self._pid = type(self._fs)(*self._fs.storage_args, **self._fs.storage_options), os.getpid()
        return self._fs

    @property
    def is_local(self) -> bool:
        from fsspec.implementations.local import LocalFileSystem

        return isinstance(self._fs, LocalFileSystem)

    def url(self, path) -> str:
        """How a path is named in messages and records: local paths as they are, others as URLs."""
        return str(path) if self.is_local else self._fs.unstrip_protocol(str(path))

    # -- reading (mmtok.data.sources): local paths through pathlib, URLs through fsspec ------------------
    def exists(self, path) -> bool:
        return path.exists() if self.is_local else self.fs.exists(str(path))

    def isdir(self, path) -> bool:
        return path.is_dir() if self.is_local else self.fs.isdir(str(path))

    def find(self, root) -> list:
        """Every file under `root`, recursively."""
        if self.is_local:
            return [p for p in root.rglob("*") if p.is_file()]
        return [PurePosixPath(p) for p in self.fs.find(str(root))]

    def glob(self, pattern) -> list:
        """Files and folders matching `pattern` (`**` crosses folders), sorted."""
        if self.is_local:
            import glob

            return [Path(m) for m in sorted(glob.glob(str(pattern), recursive=True))]
        return [PurePosixPath(p) for p in sorted(self.fs.glob(str(pattern)))]

    def read(self, path, start: int | None = None, size: int | None = None) -> bytes:
        """A file's bytes, or `size` bytes from `start` (one ranged request on an object store)."""
        if start is None:
            return path.read_bytes() if self.is_local else self.fs.cat_file(str(path))
        if self.is_local:
            with open(path, "rb") as f:
                f.seek(start)
                return f.read(size)
        return self.fs.cat_file(str(path), start=start, end=start + size)

    def open(self, path, mode: str = "rb"):
        return open(path, mode) if self.is_local else self.fs.open(str(path), mode)

    def arrow_filesystem(self):
        """What pyarrow takes as `filesystem=`: None (its own, fast local reader) or the fsspec one."""
        return None if self.is_local else self.fs

    def __getstate__(self):
        return {"_fs": self._fs}

    def __setstate__(self, state):
        self._fs, self._pid = state["_fs"], os.getpid()


def resolve(location: str | Path) -> tuple[Storage, Path | PurePosixPath]:
    """(storage, path): a local path as a Path, a URL as its filesystem and a posix path in it."""
    if not is_url(location):
        return Storage.local(), Path(location)
    from fsspec.core import url_to_fs

    fs, path = url_to_fs(location)
    return Storage(fs), PurePosixPath(path)


class Folder:
    """A directory on any filesystem, for writing files that appear whole or not at all."""

    def __init__(self, location: str | Path):
        self.location = location if is_url(location) else Path(location)
        self.storage, self.path = resolve(location)

    def __str__(self) -> str:
        return str(self.location)

    def file(self, name: str) -> Path | str:
        """A file of this folder as a local Path or a URL (what readers such as pyarrow take)."""
        return self.path / name if self.storage.is_local else f"{str(self.location).rstrip('/')}/{name}"

    def _path(self, name: str) -> str:
        return str(self.path / name)

    def makedirs(self, name: str = "") -> None:
        self.storage.fs.makedirs(self._path(name) if name else str(self.path), exist_ok=True)

    def exists(self, name: str) -> bool:
        fs = self.storage.fs
        fs.invalidate_cache(str(self.path))  # listings may be cached; other processes write here
        return fs.isfile(self._path(name))

    def names(self, pattern: str) -> list[str]:
        """Names of the committed files matching `pattern` (one listing, however many files)."""
        fs = self.storage.fs
        fs.invalidate_cache(str(self.path))
        return sorted(PurePosixPath(p).name for p in fs.glob(self._path(pattern)) if not p.endswith(TMP_SUFFIX))

    def open(self, name: str, mode: str = "rb") -> BinaryIO:
        return self.storage.fs.open(self._path(name), mode)

    def read_text(self, name: str) -> str:
        return self.storage.fs.cat_file(self._path(name)).decode()

    def remove(self, name: str) -> None:
        """Deletes a file if it is there."""
        fs = self.storage.fs
        if fs.isfile(self._path(name)):
            fs.rm_file(self._path(name))

    def remove_temporaries(self) -> int:
        """Deletes the temporary files a killed job left here (a kill between the copy to the final
        key and the delete leaves one beside its committed file); only safe when nothing writes."""
        fs = self.storage.fs
        fs.invalidate_cache(str(self.path))
        stale = [p for p in fs.find(str(self.path)) if p.endswith(TMP_SUFFIX)]
        for path in stale:
            fs.rm_file(path)
        return len(stale)

    def write_atomic(self, name: str, write: Callable[[BinaryIO], object]) -> None:
        """`write(file)` into a temporary file, then committed under `name`: readers, and a
        restarted job, see the whole file or none of it."""
        final = self._path(name)
        tmp = final + TMP_SUFFIX
        if self.storage.is_local:
            with open(tmp, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())  # on disk before the rename, or a crash could commit an empty file
            os.replace(tmp, final)
            return
        fs = self.storage.fs
        with fs.open(tmp, "wb") as f:
            write(f)
        fs.mv(tmp, final)  # object stores: a server-side copy, then the temporary key is deleted

    def write_text_atomic(self, name: str, text: str) -> None:
        self.write_atomic(name, lambda f: f.write(text.encode()))
