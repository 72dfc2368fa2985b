"""One asset found by a query on its way through :mod:`search.query`'s ranking (:class:`Hit`): its
relevance on each side and fused (:func:`set_relevance`), and why it is in the results
(:func:`explain`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assetlens.search import ranking
from assetlens.search.filters import Filter, to_json
from assetlens.search.ranking import Scale, fuse
from assetlens.search.store import Tag


@dataclass
class Hit:
    """One asset found by a query, on its way through ranking: what each side found."""

    asset_id: int
    score: float | None = None
    t: float | None = None
    semantic: float | None = None  # calibrated relevance of the cosine
    lexical_rank: int | None = None
    lexical_level: int | None = None
    lexical: float | None = None  # relevance of the word match
    segment: dict[str, Any] | None = None
    ocr: bool = False  # the text read in its pictures matched the query words
    sort_key: Any = None
    relevance: float | None = None
    hidden: list[int] = field(default_factory=list)  # its near-duplicates collapsed into it


def set_relevance(hits: dict[int, Hit], scale: Scale | None) -> None:
    """Each hit's semantic relevance (its cosine on the query's scale) and its relevance, fused
    when both lists found it."""
    scored = [h for h in hits.values() if h.score is not None]
    if scored:
        semantic = ranking.semantic_relevance(np.array([h.score for h in scored]), scale)
        for hit, value in zip(scored, semantic, strict=True):
            hit.semantic = float(value)
    for hit in hits.values():
        known = hit.semantic is not None or hit.lexical is not None
        hit.relevance = fuse(hit.semantic, hit.lexical) if known else None


def explain(
    hit: Hit,
    uri: str,
    meta: dict[str, Any],
    embedded: dict[str, Any],
    tags: list[Tag],
    words: set[str],
    flt: Filter | None,
) -> dict[str, Any]:
    """Why an asset is in the results."""
    out: dict[str, Any] = {}
    if hit.score is not None:
        out["visual"] = {"score": round(hit.score, 6), "t": hit.t}
        if hit.semantic is not None:
            out["visual"]["relevance"] = round(hit.semantic, 4)
    if hit.lexical_level is not None and hit.lexical is not None:
        match = ranking.lexical_match_name(hit.lexical_level)
        out["words"] = {"match": match, "relevance": round(hit.lexical, 4)}
    matched_tags = [t.tag for t in tags if words & set(re.findall(r"\w+", t.tag.lower()))]
    if matched_tags:
        out["tags"] = matched_tags
    if hit.segment is not None:
        out["transcript"] = hit.segment
    if hit.lexical_rank is not None:
        fields = {"filename": Path(uri).name, **{f"meta.{k}": v for k, v in {**embedded, **meta}.items()}}
        out["text_fields"] = sorted(
            name for name, value in fields.items() if words & set(re.findall(r"\w+", str(value).lower()))
        )
    if flt is not None:
        out["filter"] = to_json(flt)
    return out
