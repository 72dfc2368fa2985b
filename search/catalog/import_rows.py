"""The rows of an embedding file, checked before ``assetlens import`` writes them
(:mod:`search.catalog.vector_import`): why each bad row fails, and what each good row holds.

Runs in the import's reading thread, beside the writing one, so it may take its time per row:
it parses each row's meta once, and normalises the vectors to the stored float16.
"""

from __future__ import annotations

import functools
import json
import math
import mimetypes
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assetlens.search.catalog.vector_sources import Chunk, read_chunks
from assetlens.search.store.vectors import VECTOR_DTYPE

KINDS = ("image", "video", "audio")
TAG_SOURCES = ("clip", "user", "import")


def _first_dim(chunk: Chunk) -> int:
    lengths = chunk.lengths[chunk.lengths > 0]
    return int(np.bincount(lengths).argmax()) if len(lengths) else 0


@dataclass(frozen=True)
class CheckedBatch:
    """A chunk's rows, checked once: why each bad row fails, and what the good rows hold.

    Attributes:
        chunk: The rows as read. dim: The library's vector dimension.
        reasons: Per row, why it cannot be imported (None: it can).
        metas: Per row, its meta as a JSON object string (None: none given).
        tags: Per row, its tags as ``(tag, score, source, model, t)`` (None: none given).
        rows: ``(uri, t) -> row`` of the good rows (the last row of a repeated ``(uri, t)``).
        blobs: The stored bytes of the vector of each entry of ``rows``, in its order.
        new_values: ``uri ->`` the asset row to insert if the uri is new (from its first row).
    """

    chunk: Chunk
    dim: int
    reasons: list[str | None]
    metas: list[str | None]
    tags: list[list[tuple[str, float, str, str | None, float | None]] | None]
    rows: dict[tuple[str, float | None], int]
    blobs: list[bytes]
    new_values: dict[str, tuple[str, str | None, str | None, str | None, str]]


def checked_batches(found: list[tuple[str, Path]], batch_rows: int, dim: int) -> Iterator[CheckedBatch]:
    for layout, path in found:
        for chunk in read_chunks(layout, path, batch_rows):
            dim = dim or _first_dim(chunk)
            yield _check(chunk, dim)


def _cell(chunk: Chunk, name: str, i: int) -> Any:
    values = chunk.columns.get(name)
    return None if values is None else values[i]


def _t(chunk: Chunk, i: int) -> float | None:
    value = _cell(chunk, "t", i)
    return None if value is None else float(value)


def _check(chunk: Chunk, dim: int) -> CheckedBatch:
    n = len(chunk.uris)
    finite = np.isfinite(chunk.vectors).all(axis=1) if chunk.vectors.shape[1] else np.ones(n, bool)
    nonzero = np.abs(chunk.vectors).max(axis=1) > 0 if chunk.vectors.shape[1] else np.zeros(n, bool)
    reasons: list[str | None] = []
    metas: list[str | None] = []
    tags: list[list[tuple[str, float, str, str | None, float | None]] | None] = []
    for i in range(n):
        uri, length = chunk.uris[i], int(chunk.lengths[i])
        meta = given = reason = None
        if not isinstance(uri, str) or not uri.strip():
            reason = "missing uri"
        elif length < 0:
            reason = "missing embedding"
        elif length != dim:
            reason = f"wrong dimension {length}: the library's vectors have {dim}"
        elif not finite[i]:
            reason = "the embedding holds NaN or infinite values"
        elif not nonzero[i]:
            reason = "zero vector (it has no direction to compare)"
        else:
            reason, meta, given = _fields(chunk, i)
        reasons.append(reason)
        metas.append(meta)
        tags.append(given)
    vectors = chunk.vectors if chunk.vectors.shape[1] == dim else np.zeros((n, dim), np.float32)
    norms = np.linalg.norm(vectors, axis=1)
    stored = (vectors / np.where(norms > 0, norms, 1)[:, None]).astype(VECTOR_DTYPE)
    rows: dict[tuple[str, float | None], int] = {}
    for i in range(n):
        if reasons[i] is None:
            rows[(chunk.uris[i], _t(chunk, i))] = i
    new_values: dict[str, tuple[str, str | None, str | None, str | None, str]] = {}
    for (uri, _), i in rows.items():
        if uri not in new_values:
            new_values[uri] = _asset_values(chunk, i, uri, metas[i])
    blobs = [stored[i].tobytes() for i in rows.values()]
    return CheckedBatch(chunk, dim, reasons, metas, tags, rows, blobs, new_values)


def _fields(
    chunk: Chunk, i: int
) -> tuple[str | None, str | None, list[tuple[str, float, str, str | None, float | None]] | None]:
    """Why row ``i``'s other fields are bad (None: they are good), its meta and its tags."""
    t, kind = _cell(chunk, "t", i), _cell(chunk, "kind", i)
    if t is not None and not (_finite(t) and t >= 0):
        return f"t must be seconds >= 0, got {t!r}", None, None
    if kind is not None and kind not in KINDS:
        return f"kind must be one of {', '.join(KINDS)}, got {kind!r}", None, None
    try:
        return None, _meta_json(_cell(chunk, "meta", i)), _tags(_cell(chunk, "tags", i))
    except (ValueError, TypeError, KeyError) as exc:
        return str(exc), None, None


def _meta_json(value: Any) -> str | None:
    if value is None:
        return None
    # Python reads and writes NaN and Infinity; JSON (and SQLite, which indexes the meta's words)
    # has neither: such a row fails alone instead of failing its whole batch at commit.
    doc = json.loads(value, parse_constant=_not_json) if isinstance(value, str | bytes) else value
    if not isinstance(doc, dict):
        raise ValueError(f"meta must be a JSON object, got {type(doc).__name__}")
    return value if isinstance(value, str) else json.dumps(doc, ensure_ascii=False, allow_nan=False)


def _not_json(constant: str) -> None:
    raise ValueError(f"meta holds {constant}, which JSON does not allow")


def _tags(value: Any) -> list[tuple[str, float, str, str | None, float | None]] | None:
    if value is None:
        return None
    out = []
    for item in value:
        tag, score, t = item["tag"], item["score"], item.get("t")
        source = item.get("source") or "import"
        if not isinstance(tag, str) or not tag.strip() or not _finite(score):
            raise ValueError(f"tags must be {{tag, score}} items with a finite score, got {item!r}")
        if t is not None and not (_finite(t) and t >= 0):
            raise ValueError(f"a tag's t must be seconds >= 0, got {item!r}")
        if source not in TAG_SOURCES:
            raise ValueError(f"tag source must be one of {', '.join(TAG_SOURCES)}, got {source!r}")
        out.append((tag, float(score), source, item.get("model"), None if t is None else float(t)))
    return out


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _asset_values(
    chunk: Chunk, i: int, uri: str, meta: str | None
) -> tuple[str, str | None, str | None, str | None, str]:
    mime = _mime(posixpath.splitext(uri)[1])
    kind = _cell(chunk, "kind", i)
    if kind is None:
        major = (mime or "").split("/")[0]
        kind = major if major in KINDS else ("video" if _t(chunk, i) is not None else "image")
    created = _cell(chunk, "created", i)
    return uri, kind, mime, None if created is None else str(created), meta or "{}"


@functools.lru_cache(maxsize=1024)
def _mime(extension: str) -> str | None:
    """The media type of a file name extension (a few per import: asked once each)."""
    return mimetypes.guess_type(f"file{extension}")[0]
