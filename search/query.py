"""Queries: text-to-image and image-to-image similarity, aggregated per asset, plus transcripts.

A video has one vector per keyframe; results are per asset, the best vector wins and its time
is reported. The search asks FAISS for more vectors than assets wanted and widens until it has
enough distinct assets (or the index is exhausted).

A text search also looks the words up in transcripts (SQLite FTS5). Until the hybrid ranker
arrives, the two lists are united simply: assets whose transcript matches come first (exact
phrase before all-words, then by BM25), then the visual matches by cosine; a transcript hit
carries its segment and reports the segment's start as its time.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from models.clip import ClipEncoder
from search.errors import QueryError
from search.index import VectorIndex
from search.store import Store, Tag

QUERY_MAX_PIXELS = 100_000_000


@dataclass(frozen=True)
class Result:
    """One asset in a result list."""

    asset_id: int
    uri: str
    kind: str | None
    score: float | None  # cosine of the best vector; None for sound-only assets
    t: float | None
    tags: tuple[Tag, ...]
    segment: dict[str, Any] | None = None  # matching transcript segment (start, end, text)
    match: str = "visual"  # visual | transcript | both

    def as_dict(self, max_tags: int = 10) -> dict[str, object]:
        return {
            "asset_id": self.asset_id,
            "uri": self.uri,
            "kind": self.kind,
            "score": None if self.score is None else round(self.score, 6),
            "t": self.t,
            "match": self.match,
            "segment": self.segment,
            "tags": [
                {"tag": t.tag, "score": round(t.score, 4), "source": t.source} for t in self.tags[:max_tags]
            ],
        }


class SearchEngine:
    """Runs queries against one library.

    Args:
        store: The library's store.
        index: Its vector index (synced on first use).
        encoder: The CLIP encoder of the store's model.
    """

    def __init__(self, store: Store, index: VectorIndex, encoder: ClipEncoder) -> None:
        self.store, self.index, self.encoder = store, index, encoder
        self._synced = False

    def _check_model(self) -> None:
        stored = self.store.model_id
        if stored is not None and stored != self.encoder.model_id:
            raise QueryError(
                f"this library was embedded with {stored}, but the query model is "
                f"{self.encoder.model_id}: set ASSETLENS_CLIP_MODEL (and ASSETLENS_CLIP_CHECKPOINT) "
                f"to the library's model"
            )
        if not self._synced:
            self.index.sync(save=False)
            self._synced = True

    def search_text(self, text: str, limit: int = 20) -> list[Result]:
        """Assets ranked by similarity to a text."""
        if not text.strip():
            raise QueryError("empty query text: give words to search for")
        self._check_model()
        visual = self.search_vector(self.encoder.encode_texts([text])[0], limit)
        spoken = self.store.search_segments(text, limit)
        if not spoken:
            return visual
        by_asset = {r.asset_id: r for r in visual}
        hits = self._results([(aid, None, None) for aid, _ in spoken if aid not in by_asset])
        merged = []
        for asset_id, segment in spoken:
            base = by_asset.pop(asset_id, None) or hits.get(asset_id)
            if base is not None:
                match = "both" if base.score is not None and asset_id not in hits else "transcript"
                merged.append(replace(base, t=segment["start"], segment=segment, match=match))
        return (merged + list(by_asset.values()))[:limit]

    def similar_to_image(self, image: Image.Image, limit: int = 20) -> list[Result]:
        """Assets ranked by visual similarity to an image."""
        self._check_model()
        return self.search_vector(self.encoder.encode_images([image])[0], limit)

    def similar_to_asset(self, asset_id: int, limit: int = 20) -> list[Result]:
        """Assets visually similar to a stored asset (itself excluded), from its stored vectors."""
        self._check_model()
        vectors, _ = self.store.vectors_of(asset_id)
        query = vectors.mean(axis=0)
        query /= max(float(np.linalg.norm(query)), 1e-12)
        return self.search_vector(query, limit, exclude={asset_id})

    def search_vector(self, query: np.ndarray, limit: int, exclude: set[int] | None = None) -> list[Result]:
        """Top assets for a query vector, best vector per asset."""
        if limit < 1:
            raise QueryError(f"limit must be at least 1, got {limit}")
        exclude = exclude or set()
        best: dict[int, tuple[float, float | None]] = {}
        k = max(limit * 4, 32)
        while True:
            scores, ids = self.index.search(query[None, :], k)
            owners = self.store.vector_owners([int(i) for i in ids[0] if i >= 0])
            best.clear()
            for score, vid in zip(scores[0], ids[0], strict=True):
                owner = owners.get(int(vid))
                if owner is None or owner[0] in exclude or owner[0] in best:
                    continue  # a vector deleted since the index was synced, or a worse keyframe
                best[owner[0]] = (float(score), owner[1])
            if len(best) >= limit or ids.shape[1] < k:
                break
            k *= 4
        ranked = sorted(best.items(), key=lambda item: -item[1][0])[:limit]
        return list(self._results([(aid, score, t) for aid, (score, t) in ranked]).values())

    def _results(self, hits: list[tuple[int, float | None, float | None]]) -> dict[int, Result]:
        """Results for (asset id, score, time) hits, in order; assets deleted meanwhile are dropped."""
        assets = self.store.assets([aid for aid, _, _ in hits])
        tags = self.store.tags_of([aid for aid, _, _ in hits])
        return {
            aid: Result(aid, assets[aid].uri, assets[aid].kind, score, t, tuple(tags[aid]))
            for aid, score, t in hits
            if aid in assets
        }


def open_query_image(source: Path | bytes, max_pixels: int = QUERY_MAX_PIXELS) -> Image.Image:
    """Open a query image (file or upload bytes) as RGB with EXIF orientation applied.

    Raises:
        QueryError: Not a readable image, or larger than ``max_pixels``.
    """
    name = str(source) if isinstance(source, Path) else "uploaded image"
    try:
        with Image.open(source if isinstance(source, Path) else io.BytesIO(source)) as im:
            if im.width * im.height > max_pixels:
                raise QueryError(f"{name}: {im.width}x{im.height} exceeds {max_pixels} pixels")
            im.draft("RGB", (448, 448))
            rgb = ImageOps.exif_transpose(im).convert("RGB")
            rgb.load()
            return rgb
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise QueryError(f"{name}: not a readable image ({exc})") from exc
