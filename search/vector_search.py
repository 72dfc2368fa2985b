"""Vector search restricted to the assets that pass a filter, best keyframe per asset.

Unfiltered queries go to the FAISS index. Filtered ones take the ids of the vectors that pass
the (SQL) filter and score exactly those, so a filter never costs recall.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from search.index import VectorIndex
from search.store import Store


class VectorSearch:
    """Finds the best assets for a query vector.

    Args:
        store: The library's store.
        index: Its vector index (synced on first use).
    """

    def __init__(self, store: Store, index: VectorIndex) -> None:
        self.store, self.index = store, index
        self._synced = False

    def search(
        self, vector: np.ndarray, where: str, params: list[Any], k: int
    ) -> tuple[list[tuple[int, float, float | None]], dict[str, Any]]:
        """Top ``k`` assets as ``(asset_id, cosine, t)``, best first, and how they were found."""
        if not self._synced:
            self.index.sync(save=False)
            self._synced = True
        candidates = self.store.filtered_vector_ids(where, params)
        vectors = self.store.vectors_by_id(candidates)
        scores = vectors @ vector if len(candidates) else np.zeros(0, np.float32)
        order = np.argsort(-scores, kind="stable")
        owners = self.store.vector_owners([int(candidates[i]) for i in order])
        best: dict[int, tuple[float, float | None]] = {}
        for i in order:
            owner = owners.get(int(candidates[i]))
            if owner is not None and owner[0] not in best:
                best[owner[0]] = (float(scores[i]), owner[1])
                if len(best) >= k:
                    break
        ranked = sorted(best.items(), key=lambda item: (-item[1][0], item[0]))
        return [(aid, s, t) for aid, (s, t) in ranked], {"path": "exact", "candidates": len(candidates)}
