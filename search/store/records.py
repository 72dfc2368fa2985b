"""Row records of the store: :class:`Asset` (one ``assets`` row with its JSON columns decoded),
:class:`Tag` (one tag of an asset), ``ASSET_COLUMNS`` (the column list every asset read selects) and
:func:`now_iso` (the UTC timestamp the store writes into ``*_at`` columns).
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

ASSET_COLUMNS = (
    "id, uri, content_hash, kind, mime, size, mtime, width, height, duration, created, "
    "ingested_at, status, error, duplicate_of, meta, embedded, exif, xmp, media, poster_t, transcript_model"
)


@dataclass(frozen=True)
class Asset:
    """One row of ``assets``, with its JSON columns decoded."""

    id: int
    uri: str
    content_hash: str | None
    kind: str | None
    mime: str | None
    size: int
    mtime: float
    width: int | None
    height: int | None
    duration: float | None
    created: str | None
    ingested_at: str
    status: str
    error: str | None
    duplicate_of: int | None
    meta: dict[str, Any] = field(default_factory=dict)
    embedded: dict[str, Any] = field(default_factory=dict)
    exif: dict[str, Any] = field(default_factory=dict)
    xmp: dict[str, Any] = field(default_factory=dict)
    media: dict[str, Any] = field(default_factory=dict)
    poster_t: float | None = None
    transcript_model: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Asset:
        values = dict(row)
        for key in ("meta", "embedded", "exif", "xmp", "media"):
            values[key] = json.loads(values[key])
        return cls(**values)


@dataclass(frozen=True)
class Tag:
    """One tag of an asset."""

    tag: str
    score: float
    source: str
    model: str | None = None
    t: float | None = None


def now_iso() -> str:
    """Current UTC time as ISO 8601 (seconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
