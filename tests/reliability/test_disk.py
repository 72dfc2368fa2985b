"""Disk and resources: the library's disk fills up during an ingest.

Two ways to run out of space, each at several moments of a run (while creating the schema,
after the first batches, mid-ingest, while saving the index):

- ``RLIMIT_FSIZE`` set in the ingest process: any write past the limit fails with ``EFBIG``
  (Python ignores ``SIGXFSZ``), which SQLite reports as a disk I/O error. Works anywhere.
- a real full disk: a tiny tmpfs mounted for the data dir (needs root and CAP_SYS_ADMIN; the
  case is skipped elsewhere), where writes fail with ``ENOSPC`` ("database or disk is full").

Each time the ingest must stop with exit code 1 and one ``error: disk full while writing the
library at DIR ...: ... run the same command again`` line (no traceback), leave a database
that passes ``PRAGMA integrity_check`` and holds no half-written asset, and, once there is
room again, the same command must finish the library so that it equals an undisturbed run.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from reliability.checks import assert_same_library, check_store, connect, snapshot
from reliability.conftest import Cli, References

from assetlens.search.store import MIGRATIONS

BATCH = 6

pytestmark = pytest.mark.slow


def _assert_stopped_cleanly(result_stderr: str, returncode: int, data: Path, message: str) -> None:
    assert returncode == 1, result_stderr
    assert "Traceback" not in result_stderr, result_stderr
    # FAISS prints its own close error without a newline, so the line may start with it.
    assert result_stderr.strip().splitlines()[-1].endswith(message), result_stderr
    with connect(data) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # Every migration applied: the schema itself may be what did not fit.
        complete = conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    if complete:  # no half asset
        check_store(data, index=False, finished=False)


@pytest.mark.parametrize(
    "limit", [16_000, 300_000, 600_000], ids=["while-creating-the-schema", "after-a-batch", "mid-ingest"]
)
def test_file_size_limit_stops_the_ingest_cleanly_and_a_rerun_finishes(
    limit: int, cli: Cli, library: tuple[Path, list[Path]], references: References, tmp_path: Path
) -> None:
    root, _ = library
    reference, _ = references.get(BATCH)
    data = cli.new_data_dir(tmp_path / "data")
    command = ["ingest", str(root), "--batch-size", str(BATCH), "--json"]

    stopped = cli.run(data, *command, fsize=limit)
    _assert_stopped_cleanly(
        stopped.stderr,
        stopped.returncode,
        data,
        f"error: disk full while writing the library at {data} (the file size limit, ulimit -f, was "
        f"reached): free space or raise the limit, and run the same command again",
    )
    finished = cli.run(data, *command)

    assert finished.returncode == 0, finished.stderr
    check_store(data)
    assert_same_library(snapshot(data), reference, exact=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """A mount point and a function mounting a tmpfs of a given size there (skip if impossible)."""
    point = tmp_path / "small-disk"
    point.mkdir()
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        if shutil.which("mount") is None:
            pytest.skip("no mount command")
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(point)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root and CAP_SYS_ADMIN): {done.stderr.strip()}")
        mounted.append(point)
        return point

    yield mount
    for path in mounted:
        subprocess.run(["umount", str(path)], check=False)
        if path.is_mount():
            subprocess.run(["umount", "-l", str(path)], check=False)


# Sizes of the library's own disk: the machine cache (label embeddings) lives elsewhere.
@pytest.mark.parametrize(
    "size", ["210k", "410k", "810k"], ids=["at-the-first-batch", "mid-ingest", "at-the-index"]
)
def test_full_disk_stops_the_ingest_cleanly_and_a_rerun_with_room_finishes(
    size: str,
    small_disk: Callable[[str], Path],
    cli: Cli,
    library: tuple[Path, list[Path]],
    references: References,
    tmp_path: Path,
) -> None:
    root, _ = library
    reference, _ = references.get(BATCH)
    point = small_disk(size)
    data = cli.new_data_dir(point / "data")
    command = ["ingest", str(root), "--batch-size", str(BATCH), "--json"]

    stopped = cli.run(data, *command)
    _assert_stopped_cleanly(
        stopped.stderr,
        stopped.returncode,
        data,
        f"error: disk full while writing the library at {data}: free space and run the same command again",
    )
    subprocess.run(["mount", "-o", "remount,size=64m", str(point)], check=True)
    finished = cli.run(data, *command)

    assert finished.returncode == 0, finished.stderr
    check_store(data)
    assert_same_library(snapshot(data), reference, exact=False)
