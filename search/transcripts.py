"""Transcript output formats: plain text, SubRip (SRT), WebVTT and JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from assetlens.search.errors import QueryError

FORMATS = ("txt", "srt", "vtt", "json")


def _clock(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02}:{minutes:02}:{secs:02}{separator}{millis:03}"


def format_transcript(segments: Sequence[dict[str, Any]], fmt: str) -> str:
    """Render transcript segments (``start``, ``end``, ``text``...) in one of :data:`FORMATS`.

    Raises:
        QueryError: Unknown format.
    """
    if fmt == "txt":
        return "".join(f"{s['text'].strip()}\n" for s in segments)
    if fmt == "srt":
        return "\n".join(
            f"{i}\n{_clock(s['start'], ',')} --> {_clock(s['end'], ',')}\n{s['text'].strip()}\n"
            for i, s in enumerate(segments, 1)
        )
    if fmt == "vtt":
        cues = "".join(
            f"\n{_clock(s['start'], '.')} --> {_clock(s['end'], '.')}\n{s['text'].strip()}\n"
            for s in segments
        )
        return "WEBVTT\n" + cues
    if fmt == "json":
        return json.dumps({"segments": list(segments)}, ensure_ascii=False, indent=2) + "\n"
    raise QueryError(f"unknown transcript format {fmt!r}; use one of {', '.join(FORMATS)}")
