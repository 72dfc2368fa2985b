"""The library writer lock and the disk-full diagnosis (enrich.lock, enrich.errors)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from assetlens.enrich.errors import DiskFullError, disk_full
from assetlens.enrich.lock import LibraryBusyError, close_abandoned_jobs, holder_of, library_lock
from assetlens.search.store import Store

HOLDER = """
import sys, time
from assetlens.enrich.lock import library_lock
with library_lock(sys.argv[1], "ingest"):
    print("held", flush=True)
    sys.stdin.readline()
"""


@pytest.fixture
def other_holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the lock on ``tmp_path / 'data'`` until its stdin closes."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "data")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    yield proc
    if proc.stdin is not None:
        proc.stdin.close()
    proc.wait(timeout=30)


def test_a_second_process_is_refused_with_the_holders_pid(
    tmp_path: Path, other_holder: subprocess.Popen[str]
) -> None:
    data = tmp_path / "data"

    with pytest.raises(LibraryBusyError) as caught, library_lock(data, "tag"):
        pass

    assert holder_of(data) == f"pid {other_holder.pid} (ingest)"
    assert str(caught.value) == (
        f"another assetlens process (pid {other_holder.pid} (ingest)) is writing to the library at "
        f"{data}: wait for it to finish, or run this command with --wait"
    )


def test_wait_blocks_until_the_holder_exits(tmp_path: Path, other_holder: subprocess.Popen[str]) -> None:
    told: list[str] = []
    threading.Timer(0.5, lambda: other_holder.stdin and other_holder.stdin.close()).start()
    started = time.monotonic()

    with library_lock(tmp_path / "data", "ingest", wait=True, on_wait=told.append, poll_s=0.02) as fresh:
        waited = time.monotonic() - started
        assert fresh and holder_of(tmp_path / "data") == f"pid {os.getpid()} (ingest)"

    assert waited >= 0.4 and told == [f"pid {other_holder.pid} (ingest)"]


def test_the_lock_is_reentrant_in_one_process_and_released_after(tmp_path: Path) -> None:
    with library_lock(tmp_path, "ingest") as outer, library_lock(tmp_path, "ingest") as inner:
        assert (outer, inner) == (True, False)
    with library_lock(tmp_path, "tag") as again:
        assert again


def test_abandoned_jobs_are_closed_and_others_left_alone(tmp_path: Path) -> None:
    with Store(tmp_path / "assetlens.db") as store:
        dead = store.start_job("ingest", {})
        api = store.start_job("api:ingest", {})
        done = store.start_job("transcribe", {})
        store.finish_job(done, "done", {})

        assert close_abandoned_jobs(store) == 1
        assert [store.job(j)["status"] for j in (dead, api, done)] == ["interrupted", "running", "done"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), ": free space and run the same command again"),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "(disk quota exceeded)"),
        (OSError(errno.EFBIG, "File too large"), "(the file size limit, ulimit -f, was reached)"),
        (RuntimeError(f"Error in faiss write: {os.strerror(errno.ENOSPC)}"), "disk full while writing"),
    ],
)
def test_full_disks_are_recognised(exc: BaseException, words: str, tmp_path: Path) -> None:
    found = disk_full(exc, tmp_path)
    assert isinstance(found, DiskFullError) and words in str(found) and str(tmp_path) in str(found)


def test_a_wrapped_full_disk_is_found_and_other_errors_are_not(tmp_path: Path) -> None:
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise ValueError("while saving") from inner
    except ValueError as outer:
        assert disk_full(outer, tmp_path) is not None
    assert disk_full(OSError(errno.EACCES, "Permission denied"), tmp_path) is None
    assert disk_full(RuntimeError("something else"), tmp_path) is None
