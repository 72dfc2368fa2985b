"""Errors raised by the enrichment layer. Each names what is at fault and why."""

import errno
import os
import sqlite3
from pathlib import Path

from assetlens.models.errors import AssetLensError


class EnrichError(AssetLensError):
    """Base for enrichment errors."""


class DecodeError(EnrichError):
    """A file could not be decoded (image, video or audio).

    Attributes:
        path: The file that failed.
        reason: A short human-readable cause, e.g. ``"not an image Pillow can read"``.
    """

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self) -> tuple[type["DecodeError"], tuple[Path, str]]:
        # Default exception pickling replays ``args`` (the formatted message) into
        # ``__init__``, which takes two arguments; process pools need this to work.
        return (type(self), (self.path, self.reason))


class PathNotFoundError(EnrichError, FileNotFoundError):
    """A file or folder given to ingest does not exist (also a :class:`FileNotFoundError`).

    Attributes:
        path: The path as given.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(f"no such file or folder: {os.fspath(path)}")
        self.path = os.fspath(path)

    def __reduce__(self) -> tuple[type["PathNotFoundError"], tuple[str]]:
        return (type(self), (self.path,))


class DiskFullError(EnrichError):
    """The library could not be written: the disk, a quota or the file size limit ran out.

    Attributes:
        data_dir: The library being written.
    """

    def __init__(self, data_dir: Path, cause: str = "") -> None:
        what = f"disk full while writing the library at {data_dir}"
        advice = "free space and run the same command again"
        if cause == "fsize":
            what += " (the file size limit, ulimit -f, was reached)"
            advice = "free space or raise the limit, and run the same command again"
        elif cause == "quota":
            what += " (disk quota exceeded)"
        elif cause == "io":
            what = f"cannot write the library at {data_dir} (disk I/O error: the disk may be full or failing)"
            advice = "free space or check the disk, and run the same command again"
        super().__init__(f"{what}: {advice}")
        self.data_dir = data_dir


# SQLite maps only ENOSPC to SQLITE_FULL; a write refused with EFBIG or EDQUOT (or EIO) comes
# back as one of these I/O errors, with the system errno lost on the way.
_SQLITE_WRITE_ERRORS = frozenset(
    getattr(sqlite3, name, -1)
    for name in ("SQLITE_IOERR_WRITE", "SQLITE_IOERR_TRUNCATE", "SQLITE_IOERR_SHMSIZE", "SQLITE_IOERR_FSYNC")
)


def disk_full(exc: BaseException, data_dir: Path) -> DiskFullError | None:
    """The :class:`DiskFullError` behind ``exc`` (or its causes), else None.

    Recognises ``ENOSPC``, ``EDQUOT`` and ``EFBIG`` from any write, SQLite's "database or disk
    is full" and its write I/O errors, and FAISS write failures (a RuntimeError naming them).
    """
    causes = {errno.ENOSPC: "", errno.EDQUOT: "quota", errno.EFBIG: "fsize"}
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in causes:
            return DiskFullError(data_dir, causes[current.errno])
        if isinstance(current, sqlite3.Error):
            code = getattr(current, "sqlite_errorcode", None)
            if code == sqlite3.SQLITE_FULL:
                return DiskFullError(data_dir)
            if code in _SQLITE_WRITE_ERRORS:
                return DiskFullError(data_dir, "fsize" if _file_size_limited() else "io")
        if isinstance(current, RuntimeError):
            text = str(current)
            for number, cause in causes.items():
                if os.strerror(number) in text:
                    return DiskFullError(data_dir, cause)
        current = current.__cause__ or current.__context__
    return None


def _file_size_limited() -> bool:
    """Whether this process runs under a finite RLIMIT_FSIZE (``ulimit -f``)."""
    try:
        import resource
    except ImportError:  # not on POSIX
        return False
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return soft != resource.RLIM_INFINITY
