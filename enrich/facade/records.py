"""The records and argument forms of the public API (see :mod:`assetlens.enrich.facade`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from assetlens.search.errors import QueryError, QueryVectorError
from assetlens.search.filters import Filter, parse_filter
from assetlens.search.query_types import Page, Result, open_query_image
from assetlens.search.store import Asset, Tag
from assetlens.search.store.ocr import TextLine

SearchResult = Result
"""One asset in a result list: ``asset_id, uri, kind, score, relevance, t, tags, meta, explanation``
(and ``match``, ``segment``: how it was found, the transcript segment that matched)."""
SearchPage = Page
"""One page of results: ``results`` (best first), ``next_cursor`` (None on the last page)."""

FilterArg = str | Mapping[str, Any] | None
AssetRef = int | str | os.PathLike[str]


@dataclass(frozen=True)
class AssetRecord:
    """One asset as :meth:`Library.asset` returns it: the stored fields, its tags and transcript.

    Attributes:
        asset: Every stored field (``id, uri, kind, width, created, meta, exif, ...``).
        tags: Best first: ``tag, score, source (clip|user|import), t`` (a video's best frame).
        transcript: Segments in time order: ``start, end, text, words, language, confidence``.
        ocr: Lines of text read in its pictures: ``text, box (x0, y0, x1, y1 in 0-1),
            confidence, t`` (a video keyframe's time).
    """

    asset: Asset
    tags: tuple[Tag, ...]
    transcript: tuple[dict[str, Any], ...]
    ocr: tuple[TextLine, ...] = ()

    @property
    def id(self) -> int:
        """The asset id."""
        return self.asset.id

    @property
    def uri(self) -> str:
        """The file's absolute path."""
        return self.asset.uri

    def as_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data (the ``show --json`` document)."""
        return {
            **self.asset.__dict__,
            "tags": [
                {"tag": t.tag, "score": round(t.score, 4), "source": t.source, "t": t.t} for t in self.tags
            ],
            "transcript": [dict(s) for s in self.transcript],
            "ocr": [line.as_dict() for line in self.ocr],
        }


def as_filter(value: FilterArg | Filter) -> Filter | None:
    """A filter given as the string form, the JSON form (a dict) or an AST."""
    if value is None or isinstance(value, str | Mapping):
        return parse_filter(value)
    return value


def as_image(value: str | os.PathLike[str] | bytes | Image.Image | None) -> Image.Image | None:
    """An example image given as a path, the bytes of a file or a PIL image."""
    if value is None:
        return None
    if isinstance(value, Image.Image):
        return value.convert("RGB")
    if isinstance(value, bytes):
        return open_query_image(value)
    path = Path(value)
    if not path.is_file():
        raise QueryError(f"no such image file: {path}")
    return open_query_image(path)


def as_vector(value: Any) -> np.ndarray | None:
    """A query embedding given as numbers, an array, or the path of a ``.npy`` file holding one.

    Raises:
        QueryVectorError: A file that is not a readable ``.npy`` array of one embedding, or
            values that are not numbers.
    """
    if value is None:
        return None
    if isinstance(value, str | os.PathLike):
        path = Path(value)
        try:
            value = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise QueryVectorError(f"{path}: not a readable .npy array ({exc})") from exc
        if value.ndim == 2 and value.shape[0] == 1:
            value = value[0]
        if value.ndim != 1 or not np.issubdtype(value.dtype, np.number):
            raise QueryVectorError(f"{path}: holds an array of shape {value.shape}, not one embedding")
    try:
        return np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise QueryVectorError(f"a query vector must be a sequence of numbers ({exc})") from exc
