"""Stable cursor pagination.

A cursor is an opaque token holding the position after the last result of a page (its sort key
and asset id), a fingerprint of the query, and a snapshot: the largest asset id that existed
when the first page was served. Later pages only consider assets up to that snapshot, so assets
added while a client pages never shift results between pages: no duplicates, no gaps. It also
holds the relevance calibration of the first page (:mod:`search.ranking`), so that relevance,
and the hybrid order built on it, stay those of the first page.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from assetlens.search.errors import QueryError

CURSOR_VERSION = 2
MAX_CURSOR = 2048
MAX_SQLITE_INT = 2**63 - 1


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts.

    Attributes:
        key: Sort key of the last result served (a score or a field value; missing values sort last).
        asset_id: Asset id of the last result served (ties are broken by ascending id).
        served: Results served so far (how deep the next page starts).
        snapshot: Largest asset id considered (fixed at the first page).
        fingerprint: Digest of the query the cursor belongs to.
        scale: The semantic relevance calibration of the first page (None: no vector, or no
            background to calibrate against).
    """

    key: Any
    asset_id: int
    served: int
    snapshot: int
    fingerprint: str
    scale: tuple[float, float] | None = None

    def encode(self) -> str:
        scale = None if self.scale is None else list(self.scale)
        doc = [CURSOR_VERSION, self.key, self.asset_id, self.served, self.snapshot, self.fingerprint, scale]
        return base64.urlsafe_b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode().rstrip("=")


def fingerprint(query: dict[str, Any]) -> str:
    """Digest of everything that decides a query's order (not its page size or cursor)."""
    text = json.dumps(query, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def decode_cursor(token: str, expected_fingerprint: str, *, numeric_key: bool = False) -> Cursor:
    """Read a cursor a client sent back.

    The engine trusts a decoded cursor's values, so one edited by hand is refused here: ids and
    counts beyond SQLite's integers, a NaN or infinite key, a boolean, or text where the query
    sorts by score (``numeric_key``), a calibration that is not two finite numbers with a positive
    deviation.

    Raises:
        QueryError: Malformed or edited, from another version, or from another query.
    """
    invalid = "invalid cursor: pass back the next_cursor of the previous page unchanged"
    if len(token) > MAX_CURSOR:
        raise QueryError("invalid cursor: too long")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        version, key, asset_id, served, snapshot, digest, scale = json.loads(raw)
        if scale is not None:
            mean, std = (float(v) for v in scale)
            if not (math.isfinite(mean) and math.isfinite(std) and std > 0):
                raise ValueError("bad calibration")
            scale = (mean, std)
        cursor = Cursor(key, int(asset_id), int(served), int(snapshot), str(digest), scale)
    except (ValueError, TypeError) as exc:
        raise QueryError(invalid) from exc
    if (
        version != CURSOR_VERSION
        or isinstance(key, bool)
        or not isinstance(key, (int, float, str, type(None)))
        or (numeric_key and isinstance(key, str))
        or (isinstance(key, float) and not math.isfinite(key))
        or not all(0 <= v <= MAX_SQLITE_INT for v in (cursor.asset_id, cursor.served, cursor.snapshot))
    ):
        raise QueryError(invalid)
    if cursor.fingerprint != expected_fingerprint:
        raise QueryError("this cursor belongs to another query: repeat the query it came from, or drop it")
    return cursor


def _ordered(value: Any) -> tuple[int, Any]:
    # SQLite orders numbers before text; a field may hold both (a sku of 12 and "s3").
    return (0, value) if isinstance(value, (int, float)) else (1, str(value))


def after(key: Any, asset_id: int, cursor: Cursor, descending: bool) -> bool:
    """True when a result with ``(key, asset_id)`` comes after the cursor's position."""
    if key == cursor.key:
        return asset_id > cursor.asset_id
    if key is None or cursor.key is None:  # missing values sort last in either direction
        return key is None
    mine, theirs = _ordered(key), _ordered(cursor.key)
    return mine < theirs if descending else mine > theirs
