"""Ranking helpers: reciprocal rank fusion and per-query relevance calibration.

**Fusion.** Hybrid search fuses the semantic (CLIP) ranking and the lexical (full-text) ranking
with weighted reciprocal rank fusion: ``sum(w / (RRF_K + rank))`` over the lists an asset is in.
RRF needs no score normalisation, which matters because cosines and BM25 live on unrelated
scales.

**Calibration.** CLIP cosines are not comparable between queries: one query's good match may
score 0.31 and another's 0.24. Each query is therefore scored against a fixed background sample
of the library's vectors; a result's z-score ``(cosine - mean) / std`` says how far it stands out
from an ordinary asset *for this query*. Relevance maps z through a logistic centred at
``Z_MIDPOINT`` = 3 (roughly the best of a few thousand unrelated assets, so "merely the best of a
bad lot" lands near 0.5) with scale ``Z_SCALE``: relevance 0.9 means z ~ 4.1, well clear of the
background. ``min_relevance`` cuts on this value, the same cut meaning the same thing for every
query.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

RRF_K = 60
Z_MIDPOINT = 3.0
Z_SCALE = 0.5


def fuse(rankings: Mapping[str, Sequence[int]], weights: Mapping[str, float]) -> dict[int, float]:
    """Weighted reciprocal rank fusion of ranked asset-id lists (best first)."""
    fused: dict[int, float] = {}
    for name, ranked in rankings.items():
        weight = weights.get(name, 1.0)
        for rank, asset_id in enumerate(ranked, 1):
            fused[asset_id] = fused.get(asset_id, 0.0) + weight / (RRF_K + rank)
    return fused


class Calibrator:
    """Turns a query's raw cosines into relevance in [0, 1] against a background sample.

    Args:
        background: ``(S, dim)`` unit vectors sampled from the library (S >= 2 to calibrate).
    """

    def __init__(self, background: np.ndarray) -> None:
        self.background = background

    def relevance(self, query: np.ndarray, scores: np.ndarray) -> np.ndarray:
        """Relevance of each cosine in ``scores`` for ``query`` (all 0.5 when there is no background)."""
        scores = np.asarray(scores, dtype=np.float64)
        if len(self.background) < 2:
            return np.full(scores.shape, 0.5)
        sims = self.background @ query
        z = (scores - float(sims.mean())) / max(float(sims.std()), 1e-6)
        return 1.0 / (1.0 + np.exp(-(z - Z_MIDPOINT) / Z_SCALE))
