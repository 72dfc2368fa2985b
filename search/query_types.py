"""What a search is asked and what it answers: :class:`Query`, :class:`Result` and :class:`Page`,
with the readers that turn user input into a query (query text with weights and negatives, a
query image from a file or an upload). The engine that answers is :mod:`search.query`.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from assetlens.search.errors import QueryError
from assetlens.search.filters import Filter, to_json
from assetlens.search.store import Tag

QUERY_MAX_PIXELS = 100_000_000
MAX_LIMIT = 1000
Mode = Literal["semantic", "lexical", "hybrid"]
_PHRASE = re.compile(r'(-?)"([^"]*)"(?:\^([0-9.]+))?|(-?)(\S+?)(?:\^([0-9.]+))?(?=\s|$)')


def parse_text(text: str) -> tuple[tuple[tuple[str, float], ...], tuple[tuple[str, float], ...]]:
    """Split ``"red sneaker" -"blurry" shoe^2`` into weighted positive and negative phrases.

    Quoted phrases stay whole; unquoted words next to each other form one phrase; ``-`` makes a
    phrase negative; ``^W`` weights it (default 1).
    """
    positives: list[tuple[str, float]] = []
    negatives: list[tuple[str, float]] = []
    loose: list[str] = []
    for m in _PHRASE.finditer(text):
        quoted = m.group(2) is not None
        minus, phrase, weight = (m.group(1), m.group(2), m.group(3)) if quoted else m.group(4, 5, 6)
        if not quoted and not minus and weight is None:
            loose.append(phrase)
            continue
        if not phrase.strip():
            continue
        target = negatives if minus else positives
        target.append((phrase.strip(), float(weight) if weight else 1.0))
    if loose:
        positives.insert(0, (" ".join(loose), 1.0))
    return tuple(positives), tuple(negatives)


@dataclass(frozen=True, eq=False)
class Query:
    """One search request (see the module docstring)."""

    text: tuple[tuple[str, float], ...] = ()
    negative: tuple[tuple[str, float], ...] = ()
    image: Image.Image | None = None
    asset_id: int | None = None
    vector: np.ndarray | None = None  # a raw embedding of the library's model (normalised for you)
    filter: Filter | None = None
    mode: Mode = "hybrid"
    limit: int = 20
    cursor: str | None = None
    min_relevance: float | None = None
    sort: str | None = None  # None/"score", or "FIELD", "FIELD:asc", "FIELD:desc"
    collapse_duplicates: bool = False  # one result per near-duplicate group

    def describe(self) -> dict[str, Any]:
        """What decides the order of results (for the cursor fingerprint and echoing back)."""
        image = vector = None
        if self.image is not None:
            image = hashlib.blake2b(self.image.tobytes(), digest_size=8).hexdigest()
        if self.vector is not None:
            raw = np.asarray(self.vector, dtype=np.float64).tobytes()  # any size: checked later
            vector = hashlib.blake2b(raw, digest_size=8).hexdigest()
        return {
            "text": [list(t) for t in self.text], "negative": [list(t) for t in self.negative],
            "image": image, "vector": vector, "asset_id": self.asset_id, "mode": self.mode, "sort": self.sort,
            "filter": None if self.filter is None else to_json(self.filter),
            "min_relevance": self.min_relevance, "collapse_duplicates": self.collapse_duplicates,
        }  # fmt: skip


@dataclass(frozen=True)
class Result:
    """One asset in a result list."""

    asset_id: int
    uri: str
    kind: str | None
    score: float | None  # cosine of the best vector; None for assets found by words only
    t: float | None
    tags: tuple[Tag, ...]
    segment: dict[str, Any] | None = None
    match: str = "visual"  # visual | text | both
    relevance: float | None = None  # None only in a listing by filter alone (nothing to relate to)
    meta: dict[str, Any] = field(default_factory=dict)
    explanation: dict[str, Any] = field(default_factory=dict)

    def as_dict(self, max_tags: int = 10) -> dict[str, Any]:
        return {
            "asset_id": self.asset_id, "uri": self.uri, "kind": self.kind,
            "score": None if self.score is None else round(self.score, 6),
            "relevance": None if self.relevance is None else round(self.relevance, 4),
            "t": self.t, "match": self.match, "segment": self.segment,
            "tags": [{"tag": t.tag, "score": round(t.score, 4), "source": t.source}
                     for t in self.tags[:max_tags]],
            "meta": self.meta, "explanation": self.explanation,
        }  # fmt: skip


@dataclass(frozen=True)
class Page:
    """One page of results.

    Attributes:
        results: Best first. next_cursor: Continues the query; None on the last page.
        took_ms: Time spent. plan: How it was run. query: What decided the order (echoed back).
    """

    results: list[Result]
    next_cursor: str | None
    took_ms: float
    plan: dict[str, Any]
    query: dict[str, Any] = field(default_factory=dict)


def open_query_image(
    source: Path | bytes, max_pixels: int = QUERY_MAX_PIXELS, draft: int = 448
) -> Image.Image:
    """Open an image (file or upload bytes) as RGB with EXIF orientation applied.

    Args:
        source: A file, or the bytes of an upload.
        max_pixels: Larger images are refused from their header, before decoding.
        draft: A JPEG is decoded at the smallest DCT scale keeping both sides at least this long.

    Raises:
        QueryError: Not a readable image, or larger than ``max_pixels``.
    """
    name = str(source) if isinstance(source, Path) else "uploaded image"
    try:
        with Image.open(source if isinstance(source, Path) else io.BytesIO(source)) as im:
            if im.width * im.height > max_pixels:
                raise QueryError(f"{name}: {im.width}x{im.height} exceeds {max_pixels} pixels")
            im.draft("RGB", (draft, draft))
            rgb = ImageOps.exif_transpose(im).convert("RGB")
            rgb.load()
            return rgb
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise QueryError(f"{name}: not a readable image ({exc})") from exc
