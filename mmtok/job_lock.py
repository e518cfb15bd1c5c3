"""One job at a time per output folder: a lock file that names the job holding the folder.

`mmtok tokenize` takes `job.lock` in its output folder before it plans, and gives it back when it
ends (finished, interrupted or failed). A second job on the same folder is refused with the holder's
host, process and age, instead of racing it for the same shards. The lock is a small JSON file:

- it is created exclusively (`open(..., "xb")`: O_EXCL on local disks, a conditional put,
  If-None-Match, on S3), so of two jobs starting together one wins;
- the holder rewrites its `heartbeat` every HEARTBEAT_SECONDS from a background thread;
- a lock is stale, and taken over with a warning, when its holder is known dead (same host, that
  process gone or replaced) or its heartbeat is older than STALE_SECONDS (a job on another machine
  that was killed); `break_lock=True` (`mmtok tokenize --break-lock`) removes any lock.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from pathlib import Path

from mmtok.storage import Folder

logger = logging.getLogger("mmtok.tokenize")

LOCK_FILE = "job.lock"
HEARTBEAT_SECONDS = 30.0
STALE_SECONDS = 600.0  # twenty missed heartbeats: the holder is dead, or its machine is


class FolderLocked(OSError):
    """Another live job holds the output folder (an OSError, as a busy resource is)."""


def _process_start(pid: int) -> str | None:
    """When a process started (Linux /proc), so a reused pid is not taken for the lock's holder."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return started is None or _process_start(pid) in (None, started)


class FolderLock:
    """`with FolderLock(folder):` holds `folder/job.lock` for the block (see the module docstring)."""

    def __init__(self, folder: Folder, *, break_lock: bool = False, what: str = "job"):
        self.folder, self.break_lock, self.what = folder, break_lock, what
        self.token = uuid.uuid4().hex
        self.record = {
            "token": self.token,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "process_start": _process_start(os.getpid()),
            "started": time.time(),
        }
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- taking and giving back ----------------------------------------------------------------
    def acquire(self) -> FolderLock:
        for _ in range(3):  # a stale lock removed, then another job may still win the race
            if self._create():
                self._thread = threading.Thread(target=self._beat, name="mmtok-lock-heartbeat", daemon=True)
                self._thread.start()
                return self
            holder = self._holder()
            if holder is None:  # gone between our attempt and the read: try again
                continue
            why_stale = self._stale(holder)
            if why_stale is None and not self.break_lock:
                raise FolderLocked(self._held_message(holder))
            # Removed only if it is still the lock judged stale: a job that took it over meanwhile keeps it.
            if self._holder() != holder:
                continue
            logger.warning(
                "%s: removing the lock of %s (%s)",
                self.folder,
                self._describe(holder),
                why_stale or "--break-lock",
            )
            self.folder.remove(LOCK_FILE)
        raise FolderLocked(f"{self.folder}: could not take {LOCK_FILE}: other jobs keep taking it")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        holder = self._holder()
        if holder is not None and holder.get("token") == self.token:
            self.folder.remove(LOCK_FILE)

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    # -- the lock file -----------------------------------------------------------------------------
    def _payload(self) -> bytes:
        return (json.dumps({**self.record, "heartbeat": time.time()}) + "\n").encode()

    def _create(self) -> bool:
        """Creates the lock file if there is none; True when this job now holds it."""
        self.folder.makedirs()
        if not self.folder.create_exclusive(LOCK_FILE, self._payload()):
            return False
        holder = self._holder()  # a store without exclusive creation may have let two writers in
        return holder is not None and holder.get("token") == self.token

    def _holder(self) -> dict | None:
        """The lock's record; None when there is no lock. A file that does not parse is read again
        (an exclusive create is an empty file for a moment before its record is written), and one
        that still does not is a foreign or torn lock, treated as stale."""
        for attempt in range(5):
            try:
                return json.loads(self.folder.read_text(LOCK_FILE))
            except FileNotFoundError:
                return None
            except (json.JSONDecodeError, UnicodeDecodeError):
                time.sleep(0.2 * (attempt + 1))
        return {"token": None, "heartbeat": 0.0, "host": "?", "pid": -1}

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                holder = self._holder()
                if holder is None or holder.get("token") != self.token:  # broken by another job: not ours now
                    logger.warning("%s: %s was taken over by another job", self.folder, LOCK_FILE)
                    return
                self.folder.write_text_atomic(LOCK_FILE, self._payload().decode())
            except Exception as error:  # a missed heartbeat is not worth stopping the job for
                logger.warning("%s: could not refresh %s: %s", self.folder, LOCK_FILE, error)

    # -- whose it is -------------------------------------------------------------------------------
    def _stale(self, holder: dict) -> str | None:
        """Why the holder is certainly gone, or None while it may be alive."""
        if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
            if not _alive(holder["pid"], holder.get("process_start")):
                return "its process is no longer running"
            return None
        age = time.time() - float(holder.get("heartbeat") or 0.0)
        if age > STALE_SECONDS:
            return f"no heartbeat for {age / 60:.0f} minutes"
        return None

    @staticmethod
    def _describe(holder: dict) -> str:
        return f"process {holder.get('pid')} on {holder.get('host')}"

    def _held_message(self, holder: dict) -> str:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(holder.get("started") or 0.0)))
        beat = time.time() - float(holder.get("heartbeat") or 0.0)
        return (
            f"{self.folder} is in use by another {self.what} ({self._describe(holder)}, started {started}, "
            f"last heartbeat {beat:.0f} s ago); wait for it to finish, or, if it is no longer running, "
            "run again with --break-lock"
        )
