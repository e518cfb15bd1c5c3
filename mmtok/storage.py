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
import stat
import uuid
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import BinaryIO, NamedTuple

TMP_SUFFIX = ".tmp"
# What in an object store's listing changes when an object is replaced, in the order tried
# (S3's ETag, GCS' md5/generation, Azure's etag, then modification times).
_VERSION_FIELDS = ("ETag", "etag", "md5Hash", "generation", "LastModified", "last_modified", "updated", "mtime")


class Listing(NamedTuple):
    """Files found under a folder, what identifies each one's contents, and what was passed over."""

    files: list  # paths, sorted as walked
    fingerprints: dict  # path -> "size:version" (None for a link whose target is missing)
    passed_over: list[tuple[str, str]]  # (where, why): folders walked once only, unreadable folders, non-files


def temporary_name(final: str) -> str:
    """A name no other writer uses for `final`'s temporary (two jobs, or processes, never share one)."""
    return f"{final}.{os.getpid()}-{uuid.uuid4().hex[:8]}{TMP_SUFFIX}"


class CommitOnExit:
    """A writer used in `with`: `close()` commits its files on a clean exit, `abort()` removes
    what it wrote when the block raised, so a failed job leaves nothing under the final names."""

    def __enter__(self):
        return self

    def __exit__(self, kind, error, trace) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


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
        """Every file under `root`, recursively (symbolic links followed)."""
        return self.list_files(root).files

    def list_files(self, root) -> Listing:
        """Every file under `root` with its fingerprint, and what was passed over and why."""
        if self.is_local:
            return _walk_local(Path(root))
        found = self.fs.find(str(root), detail=True)
        files = [PurePosixPath(p) for p in sorted(found)]
        return Listing(files, {p: _object_fingerprint(found[str(p)]) for p in files}, [])

    def fingerprint(self, path) -> str | None:
        """What changes when the file at `path` is replaced ("size:version"); None if it is missing."""
        if self.is_local:
            try:
                return _stat_fingerprint(os.stat(path))
            except OSError:
                return None
        try:
            return _object_fingerprint(self.fs.info(str(path)))
        except FileNotFoundError:
            return None

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


def _stat_fingerprint(info: os.stat_result) -> str:
    return f"{info.st_size}:{info.st_mtime_ns}"


def _object_fingerprint(info: dict) -> str:
    version = next((str(info[k]) for k in _VERSION_FIELDS if info.get(k) is not None), "")
    return f"{info.get('size')}:{version}"


def _walk_local(root: Path) -> Listing:
    """Files under `root`, following symbolic links to files and folders.

    pathlib's rglob (Python < 3.13) neither follows linked folders nor reports dangling links, so
    the walk is written out: each folder is identified by (device, inode) and listed once, which
    stops link loops and two links to one folder from listing files twice (the first path in
    sorted order is kept); a link whose target is missing is kept as a file, so reading it gives
    an error that names it, and anything else that is not a regular file is passed over and said."""
    files, fingerprints, passed_over = [], {}, []
    listed: set[tuple[int, int]] = set()
    folders = [root]
    while folders:
        folder = folders.pop()
        try:
            info = folder.stat()
            entries = sorted(os.scandir(folder), key=lambda e: e.name, reverse=True)
        except OSError as error:
            passed_over.append((str(folder), f"unreadable folder: {error.strerror or error}"))
            continue
        if (info.st_dev, info.st_ino) in listed:
            passed_over.append((str(folder), "folder already listed (a symbolic link loop or a second link to it)"))
            continue
        listed.add((info.st_dev, info.st_ino))
        subfolders = []
        for entry in entries:
            path = Path(entry.path)
            try:
                target = entry.stat(follow_symlinks=True)
            except OSError:  # a dangling link, or one into a folder we may not enter
                files.append(path)
                fingerprints[path] = None
                continue
            if stat.S_ISDIR(target.st_mode):
                subfolders.append(path)
            elif stat.S_ISREG(target.st_mode):
                files.append(path)
                fingerprints[path] = _stat_fingerprint(target)
            else:
                passed_over.append((str(path), "not a regular file (a device, socket or pipe)"))
        folders += subfolders  # reversed names on a stack: walked in sorted order
    return Listing(files, fingerprints, passed_over)


def resolve(location: str | Path) -> tuple[Storage, Path | PurePosixPath]:
    """(storage, path): a local path as a Path, a URL as its filesystem and a posix path in it."""
    if not is_url(location):
        return Storage.local(), Path(location)
    from fsspec.core import url_to_fs

    fs, path = url_to_fs(location)
    return Storage(fs), PurePosixPath(path)


def looks_like_path(text: str) -> bool:
    """Whether an argument that names no existing folder was meant as a local path, so it is never
    sent to a hub: it starts with ./ ../ / or ~, holds a backslash or more than one slash, is
    ORG/NAME with a local folder ORG, or is no valid hub repo id at all."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if text in (".", "..") or text.startswith(("./", "../", "/", "~", ".\\", "..\\")) or "\\" in text:
        return True
    parts = text.split("/")
    if len(parts) > 2 or (len(parts) == 2 and Path(parts[0]).expanduser().is_dir()):
        return True  # hub ids hold one slash; "data/typo" with data/ here is a folder that is missing
    try:
        validate_repo_id(text)
    except HFValidationError:  # no hub id could look like this ("my model", "C:\\x", ".hidden")
        return True
    return False


def missing_folder_error(text: str) -> FileNotFoundError:
    """The error for a local path that is not there, saying how much of it does exist."""
    path = Path(text).expanduser()
    parents = [parent for parent in path.parents if parent not in (Path("."), Path(parent.anchor))]
    existing = next((parent for parent in parents if parent.is_dir()), None)
    where = f" ({existing} exists, {path.relative_to(existing)} in it does not)" if existing else ""
    return FileNotFoundError(f"no such folder: {text}{where}; a local model is a folder written by save_pretrained")


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
            try:
                fs.rm_file(path)
            except FileNotFoundError:  # renamed into place meanwhile (a lock's heartbeat)
                pass
        return len(stale)

    def write_atomic(self, name: str, write: Callable[[BinaryIO], object]) -> None:
        """`write(file)` into a temporary file, then committed under `name`: readers, and a
        restarted job, see the whole file or none of it."""
        final = self._path(name)
        tmp = temporary_name(final)
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

    def create_exclusive(self, name: str, data: bytes) -> bool:
        """Writes `name` only if it does not exist; False if it does. Exclusive on local disks
        (O_EXCL) and on S3 (a conditional put); elsewhere an existence check and a write, which
        two writers can both pass at the same moment (such stores give no stronger primitive)."""
        fs = self.storage.fs
        try:
            with fs.open(self._path(name), "xb") as f:
                f.write(data)
            return True
        except FileExistsError:
            return False
        except (NotImplementedError, ValueError):  # no exclusive mode on this filesystem
            if self.exists(name):
                return False
            self.write_atomic(name, lambda f: f.write(data))
            return True
        except OSError as error:  # S3 answers a failed If-None-Match with 412 PreconditionFailed
            if "PreconditionFailed" in str(error) or "412" in str(error):
                return False
            raise

    def write_text_atomic(self, name: str, text: str) -> None:
        self.write_atomic(name, lambda f: f.write(text.encode()))
