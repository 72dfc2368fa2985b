"""Opening media files with PyAV, shared by :mod:`enrich.audio` and :mod:`enrich.video`.

Every failure to open becomes a :class:`DecodeError` whose reason says what is wrong in a
few words (missing, empty, not media...), so one bad file in a batch reads clearly.
"""

from __future__ import annotations

from pathlib import Path

import av
import av.container

from assetlens.enrich.errors import DecodeError

_OS_REASONS: dict[type[OSError], str] = {
    FileNotFoundError: "file not found",
    IsADirectoryError: "is a directory, not a media file",
    PermissionError: "permission denied",
}


def open_media(path: Path) -> av.container.InputContainer:
    """Open ``path`` for demuxing; the caller closes it.

    Raises:
        DecodeError: The file is missing, empty, a directory, unreadable, not media, or
            truncated/corrupt beyond opening (e.g. an MP4 cut before its ``moov`` index).
    """
    try:
        if path.stat().st_size == 0:
            raise DecodeError(path, "empty file (0 bytes)")
        return av.open(str(path), mode="r")
    except DecodeError:
        raise
    except Exception as exc:  # any failure to open is a decode failure of this file
        raise DecodeError(path, failure_reason(exc, opening=True)) from exc


def failure_reason(exc: BaseException, *, opening: bool = False) -> str:
    """A short human-readable cause for an FFmpeg/PyAV failure (``opening``: at ``av.open``)."""
    for kind, reason in _OS_REASONS.items():
        if isinstance(exc, kind):
            return reason
    if opening and isinstance(exc, av.error.InvalidDataError):
        # FFmpeg cannot tell "not media" from "media with a missing index" (an MP4/M4A cut
        # before its moov atom): name both.
        return "not a media file FFmpeg can read, or truncated/corrupt (invalid data)"
    detail = str(exc).strip()
    described = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return f"cannot open as media ({described})" if opening else described
