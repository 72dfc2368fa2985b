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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from assetlens.search.catalog.vector_sources import Chunk, read_chunks
from assetlens.search.store.vectors import VECTOR_DTYPE

T = TypeVar("T")
KINDS = ("image", "video", "audio")
TAG_SOURCES = ("clip", "user", "import")


def _first_dim(found: list[tuple[str, Path]], batch_rows: int) -> int:
    """The most common vector length of the first batch holding vectors (0: none has any)."""
    for layout, path in found:
        for chunk in read_chunks(layout, path, batch_rows):
            lengths = chunk.lengths[chunk.lengths > 0]
            if len(lengths):
                return int(np.bincount(lengths).argmax())
    return 0


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
    # An empty library takes the dimension of the files' first vectors; every batch is then read
    # at that length, so a row of it stays readable in a batch of mostly other lengths.
    dim = dim or _first_dim(found, batch_rows)
    for layout, path in found:
        for chunk in read_chunks(layout, path, batch_rows, dim):
            yield _check(chunk, dim)


def _check(chunk: Chunk, dim: int) -> CheckedBatch:
    # Column by column, with a loop of Python only where a row's own value must be looked at:
    # the import reads tens of thousands of rows a second, and this thread shares two cores
    # with the writing one.
    n = len(chunk.uris)
    stored, reasons = _vectors(chunk, dim)
    for i, uri in enumerate(chunk.uris):
        if not isinstance(uri, str) or not uri.strip():
            reasons[i] = "missing uri"
    columns = chunk.columns
    ts = columns.get("t") or [None] * n
    for i in _given(columns.get("t"), reasons):
        if not (_finite(ts[i]) and ts[i] >= 0):
            reasons[i] = f"t must be seconds >= 0, got {ts[i]!r}"
    for i in _given(columns.get("kind"), reasons):
        if columns["kind"][i] not in KINDS:
            reasons[i] = f"kind must be one of {', '.join(KINDS)}, got {columns['kind'][i]!r}"
    metas = _parsed(columns.get("meta"), _meta_json, reasons)
    tags = _parsed(columns.get("tags"), _tags, reasons)
    for i, reason in enumerate(reasons):  # a row with a bad field takes none of its fields
        if reason is not None:
            metas[i] = tags[i] = None
    rows = {
        (chunk.uris[i], None if ts[i] is None else float(ts[i])): i for i in range(n) if reasons[i] is None
    }
    new_values: dict[str, tuple[str, str | None, str | None, str | None, str]] = {}
    for (uri, t), i in rows.items():
        if uri not in new_values:
            new_values[uri] = _asset_values(chunk, i, uri, t, metas[i])
    blobs = [stored[i].tobytes() for i in rows.values()]
    return CheckedBatch(chunk, dim, reasons, metas, tags, rows, blobs, new_values)


def _vectors(chunk: Chunk, dim: int) -> tuple[np.ndarray, list[str | None]]:
    """The rows' vectors normalised to the stored dtype, and why a row's vector is bad (None: good)."""
    n, vectors = len(chunk.uris), chunk.vectors
    reasons: list[str | None] = [None] * n
    for i in np.flatnonzero(chunk.lengths != dim):
        length = int(chunk.lengths[i])
        reasons[i] = (
            "missing embedding"
            if length < 0
            else f"wrong dimension {length}: the library's vectors have {dim}"
        )
    if not dim or vectors.shape[1] != dim:  # no row has a vector of length dim (an empty list has 0)
        for row in range(n):
            reasons[row] = reasons[row] or "zero vector (it has no direction to compare)"
        return np.zeros((n, dim), VECTOR_DTYPE), reasons
    squares = np.einsum("ij,ij->i", vectors, vectors)
    odd = np.flatnonzero(~np.isfinite(squares) | (squares == 0))
    squares[odd] = 1.0
    stored = np.empty((n, dim), VECTOR_DTYPE)
    with np.errstate(over="ignore", invalid="ignore"):
        np.multiply(vectors, (1.0 / np.sqrt(squares))[:, None], out=stored, casting="unsafe")
    # Only rows whose sum of squares is NaN, infinite or 0 are looked at again: those holding NaN
    # or infinity, zero vectors, and vectors whose squares overflow or underflow float32.
    for i in odd:
        row = vectors[i].astype(np.float64)
        largest = np.abs(row).max()
        if not np.isfinite(largest):
            reasons[i] = reasons[i] or "the embedding holds NaN or infinite values"
        elif largest == 0:
            reasons[i] = reasons[i] or "zero vector (it has no direction to compare)"
        else:  # (a failing row's stored vector is never written)
            row /= largest
            stored[i] = row / np.linalg.norm(row)
    return stored, reasons


def _parsed(values: list[Any] | None, parse: Callable[[Any], T], reasons: list[str | None]) -> list[T | None]:
    """``parse`` of each value of the rows still good (None elsewhere); a value it refuses gives its
    row the reason."""
    out: list[T | None] = [None] * len(reasons)
    for i in _given(values, reasons):
        try:
            out[i] = parse(values[i])  # type: ignore[index]  # _given yields nothing when values is None
        except (ValueError, TypeError, KeyError) as exc:
            reasons[i] = str(exc)
    return out


def _given(values: list[Any] | None, reasons: list[str | None]) -> Iterator[int]:
    """Rows still good that hold a value in ``values`` (a column absent from the file holds none)."""
    if values is not None:
        for i, value in enumerate(values):
            if value is not None and reasons[i] is None:
                yield i


def _meta_json(value: Any) -> str | None:
    if value is None:
        return None
    # Python reads and writes NaN and Infinity; JSON (and SQLite, which indexes the meta's words)
    # has neither: such a row fails alone instead of failing its whole batch at commit.
    if isinstance(value, bytes):
        value = value.decode()
    doc = _DECODER.decode(value) if isinstance(value, str) else value
    if not isinstance(doc, dict):
        raise ValueError(f"meta must be a JSON object, got {type(doc).__name__}")
    return value if isinstance(value, str) else json.dumps(doc, ensure_ascii=False, allow_nan=False)


def _not_json(constant: str) -> None:
    raise ValueError(f"meta holds {constant}, which JSON does not allow")


_DECODER = json.JSONDecoder(parse_constant=_not_json)  # one for all rows: making one costs as much as a parse


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
    chunk: Chunk, i: int, uri: str, t: float | None, meta: str | None
) -> tuple[str, str | None, str | None, str | None, str]:
    mime = _mime(posixpath.splitext(uri)[1])
    kinds, dates = chunk.columns.get("kind"), chunk.columns.get("created")
    kind = None if kinds is None else kinds[i]
    if kind is None:
        major = (mime or "").split("/")[0]
        kind = major if major in KINDS else ("video" if t is not None else "image")
    created = None if dates is None else dates[i]
    return uri, kind, mime, None if created is None else str(created), meta or "{}"


@functools.lru_cache(maxsize=1024)
def _mime(extension: str) -> str | None:
    """The media type of a file name extension (a few per import: asked once each)."""
    return mimetypes.guess_type(f"file{extension}")[0]
