"""API keys without the web framework: scopes, generation, hashing (used by the CLI and the API).

A key is ``al_`` + 32 random bytes (URL-safe base64). Only its SHA-256 is stored, so a leaked
database leaks no usable key; lookups go by that hash, so no secret is compared byte by byte.

Scopes nest: ``admin`` includes ``write``, which includes ``read``.

* ``read``: search, similar (by asset or uploaded picture), listings, assets, thumbnails,
  transcripts, tags, facets, jobs, metrics (when not public).
* ``write``: edit meta, ingest uploaded files, re-tag.
* ``admin``: delete assets, ingest server paths under the library roots, manage keys.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from assetlens.search.store import Store

SCOPES = ("read", "write", "admin")
KEY_PREFIX = "al_"


def implied(scope: str) -> frozenset[str]:
    """The scopes a granted scope includes."""
    return frozenset(SCOPES[: SCOPES.index(scope) + 1])


def hash_key(key: str) -> str:
    """SHA-256 (hex) of a key: what the store keeps."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def create_key(store: Store, scope: str, name: str = "") -> tuple[int, str]:
    """Create a key; returns ``(id, key)``: the key is not kept and cannot be shown again.

    Raises:
        ValueError: Unknown scope.
    """
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}: use one of {', '.join(SCOPES)}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = store.create_api_key(name, hash_key(key), scope)
    return key_id, key


def key_doc(row: dict[str, Any]) -> dict[str, Any]:
    """A key row as shown to people and programs (never the key or its hash)."""
    return {k: row.get(k) for k in ("id", "name", "scopes", "created_at", "revoked_at", "last_used_at")}
