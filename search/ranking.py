"""Ranking: calibrated relevance of each kind of evidence, and the hybrid fusion of both.

Every result carries a relevance in [0, 1] that means the same whatever found it, so that
``min_relevance`` cuts the same way in every mode, and so that hybrid search can weigh what each
ranking knows instead of only where an asset stands in it.

**Semantic relevance.** CLIP cosines are not comparable between queries: one query's good match
may score 0.31 and another's 0.24. Each query is therefore scored against a fixed background
sample of the library's vectors; a result's z-score ``(cosine - mean) / std`` says how far it
stands out from an ordinary asset *for this query*. Relevance maps z through a logistic centred
at ``Z_MIDPOINT`` = 3 (roughly the best of a few thousand unrelated assets, so "merely the best
of a bad lot" lands near 0.5) with scale ``Z_SCALE``: relevance 0.9 means z ~ 4.1, well clear of
the background. The background's mean and deviation for the query (its ``Scale``) travel in the
paging cursor: the sample moves as the library grows and differs between sessions, and the
pages of one query must keep the relevance, hence the order, of their first page.

**Lexical relevance.** A lexical hit holds every query word (full-text search ANDs them). How
closely it holds them is the evidence: the words in order as a phrase inside one field or
transcript segment (``phrase``), all of them within a few words of each other in one field or
segment (``near``), or spread over the asset's fields (``all words``). Each level has a base
relevance (``LEXICAL_LEVELS``); BM25 (term frequency, rarity, field length) orders hits inside a
level, adding at most ``BM25_SPAN`` so a level never overtakes the one above it. A phrase match
of what the user typed is as strong as a picture that clearly stands out (0.9 and up).

**Fusion.** Hybrid relevance is the noisy-OR of the two: ``1 - (1 - semantic) * (1 - lexical)``,
the chance that at least one kind of evidence is right if each were right with its own
relevance. A list an asset is not in contributes 0. A semantic hit that does not stand out
(relevance 0.02) adds almost nothing, so it cannot outrank a phrase spoken word for word in a
transcript; two strong pieces of evidence together beat either alone. Hybrid results are ordered
by this relevance. (Reciprocal rank fusion, the previous method, counted rank 1 of either list the
same; the ranking evaluation in ``tests/ranking_eval.py`` keeps it as the baseline.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from assetlens.search.filters import fts_query

Z_MIDPOINT = 3.0
Z_SCALE = 0.5
NEAR_WORDS = 10  # "near": every query word within this many words of the others
# Level -> (name, base relevance); see the module docstring.
LEXICAL_LEVELS = {3: ("phrase", 0.9), 2: ("near", 0.75), 1: ("all words", 0.6)}
BM25_SPAN = 0.09


Scale = tuple[float, float]
"""Mean and standard deviation of the background's cosines to one query vector."""


class Calibrator:
    """Measures how a library's ordinary assets score against a query (its background scale).

    Args:
        background: ``(S, dim)`` unit vectors sampled from the library (S >= 2 to calibrate).
    """

    def __init__(self, background: np.ndarray) -> None:
        self.background = background

    def scale(self, query: np.ndarray) -> Scale | None:
        """The background scale of ``query``; None without a background (fewer than 2 vectors)."""
        if len(self.background) < 2:
            return None
        sims = self.background @ query
        return float(sims.mean()), max(float(sims.std()), 1e-6)


def semantic_relevance(scores: np.ndarray, scale: Scale | None) -> np.ndarray:
    """Relevance of each cosine in ``scores`` against a query's background scale (0.5 without one)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scale is None:
        return np.full(scores.shape, 0.5)
    mean, std = scale
    z = (scores - mean) / std
    return 1.0 / (1.0 + np.exp(-(z - Z_MIDPOINT) / Z_SCALE))


@dataclass(frozen=True)
class LexicalQuery:
    """The FTS5 expressions of one query's words, one per match level (best level first).

    Attributes:
        levels: ``(level, expression)`` pairs; a one-word query has only the phrase level (the
            three are the same match).
    """

    levels: tuple[tuple[int, str], ...]

    @classmethod
    def of(cls, text: str) -> LexicalQuery | None:
        """The expressions for the words (``\\w+``) of ``text``; None without words."""
        every = fts_query(text)  # the words, each quoted (``\\w+`` never holds a quote), ANDed
        if every is None:
            return None
        quoted = every.split(" AND ")
        phrase = " + ".join(quoted)
        if len(quoted) == 1:
            return cls(((3, phrase),))
        near = f"NEAR({' '.join(quoted)}, {NEAR_WORDS})"
        return cls(((3, phrase), (2, near), (1, every)))


def lexical_relevance(level: int, bm25: float) -> float:
    """Relevance of a lexical hit from its match level and its FTS5 ``bm25`` (lower is better)."""
    _, base = LEXICAL_LEVELS[level]
    strength = max(-bm25, 0.0)
    return base + BM25_SPAN * strength / (strength + 1.0)


def lexical_match_name(level: int) -> str:
    """How a lexical hit matched: ``phrase``, ``near`` or ``all words``."""
    return LEXICAL_LEVELS[level][0]


def fuse(semantic: float | None, lexical: float | None) -> float:
    """Hybrid relevance: the noisy-OR of the semantic and lexical relevance (None: not in that list)."""
    return 1.0 - (1.0 - (semantic or 0.0)) * (1.0 - (lexical or 0.0))
