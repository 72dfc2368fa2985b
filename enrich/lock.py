"""One writer per library: an advisory lock on ``DATA_DIR/ingest.lock``.

SQLite would serialise two ingests batch by batch, but both would decode and embed the same
files, count each other's work as their own and interleave their jobs. So the commands that
write a library in bulk (``ingest``, ``reembed``, ``tag``, ``transcribe``, ``ocr``) hold this lock for
their whole run; a second one refuses at once, naming the process that holds it, or waits for
it with ``--wait``. Searches never take it: WAL lets them read while a writer writes.

The lock is ``flock(2)`` on an open file, so the kernel releases it when its holder exits,
however it exits: a killed ingest never leaves a stale lock behind. The file keeps the pid and
command of its last holder, for the message. Taking the lock again in a process that already
holds it (the CLI around :meth:`Ingester.ingest`) is a no-op.

Whoever takes the lock fresh knows that no other writer runs, so jobs still marked ``running``
were left by a killed process: :func:`close_abandoned_jobs` marks them ``interrupted``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from assetlens.enrich.errors import EnrichError
from assetlens.search.store import Store

LOCK_FILE = "ingest.lock"
LOCKED_JOB_KINDS = ("ingest", "transcribe", "ocr")  # the job rows written only under this lock

_held: dict[str, int] = {}  # lock files this process holds -> nesting depth
_held_guard = threading.Lock()


class LibraryBusyError(EnrichError):
    """Another process is writing to the library.

    Attributes:
        holder: What the lock file says about its holder (``"pid 123 (ingest)"``), or ``""``.
    """

    def __init__(self, data_dir: Path, holder: str) -> None:
        who = f"another assetlens process ({holder})" if holder else "another assetlens process"
        super().__init__(
            f"{who} is writing to the library at {data_dir}: wait for it to finish, "
            f"or run this command with --wait"
        )
        self.holder = holder


def holder_of(data_dir: Path) -> str:
    """``"pid N (command)"`` of the last process that took the lock, or ``""``."""
    try:
        text = (Path(data_dir) / LOCK_FILE).read_text(encoding="utf-8", errors="replace").split()
    except OSError:
        return ""
    if not text or not text[0].isdigit():
        return ""
    return f"pid {text[0]}" + (f" ({' '.join(text[1:])})" if len(text) > 1 else "")


@contextlib.contextmanager
def library_lock(
    data_dir: Path,
    command: str,
    *,
    wait: bool = False,
    on_wait: Callable[[str], None] | None = None,
    poll_s: float = 0.2,
) -> Iterator[bool]:
    """Hold the library's writer lock for the duration of the block.

    Args:
        data_dir: The library folder (created if missing).
        command: What the holder is doing, recorded for the message of a refused process.
        wait: Wait for the holder to finish instead of refusing.
        on_wait: Called once with the holder's description when this call starts waiting.
        poll_s: How often a waiting call retries.

    Yields:
        True when this call took the lock, False when this process already held it.

    Raises:
        LibraryBusyError: Another process holds the lock and ``wait`` is False.
        OSError: The lock file cannot be created (e.g. a read-only or full disk).
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_FILE
    key = os.path.realpath(path)
    with _held_guard:
        if key in _held:
            _held[key] += 1
            nested = True
        else:
            nested = False
    if nested:
        try:
            yield False
        finally:
            with _held_guard:
                _held[key] -= 1
        return
    fd = _open(path)
    try:
        _acquire(fd, data_dir, wait, on_wait, poll_s)
        _record(fd, command)
        with _held_guard:
            _held[key] = 1
        try:
            yield True
        finally:
            with _held_guard:
                del _held[key]
    finally:
        os.close(fd)  # closing the last descriptor releases the flock


def _open(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except PermissionError:
        # Created by another user: flock needs only a readable descriptor.
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)


def _acquire(
    fd: int, data_dir: Path, wait: bool, on_wait: Callable[[str], None] | None, poll_s: float
) -> None:
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
        holder = holder_of(data_dir)
        if not wait:
            raise LibraryBusyError(data_dir, holder)
        if not told and on_wait is not None:
            on_wait(holder)
            told = True
        # Polling rather than a blocking flock keeps Ctrl-C working while waiting.
        time.sleep(poll_s)


def _record(fd: int, command: str) -> None:
    """Write our pid and command into the lock file (best effort: it only feeds a message)."""
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {command}\n".encode(), 0)


@contextlib.contextmanager
def writer_lock(
    store: Store, command: str, *, wait: bool = False, on_wait: Callable[[str], None] | None = None
) -> Iterator[None]:
    """:func:`library_lock` on the store's library; a fresh lock first closes abandoned jobs."""
    with library_lock(store.path.parent, command, wait=wait, on_wait=on_wait) as fresh:
        if fresh:
            close_abandoned_jobs(store)
        yield


def close_abandoned_jobs(store: Store) -> int:
    """Mark ``interrupted`` the jobs a killed writer left ``running``; call only with a fresh lock.

    Returns:
        How many jobs were closed.
    """
    abandoned = store.jobs_with_status(LOCKED_JOB_KINDS, ["running"])
    for job in abandoned:
        store.update_job(job["id"], status="interrupted", finished=True)
    return len(abandoned)
