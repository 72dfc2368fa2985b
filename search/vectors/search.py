"""Vector search for the query engine: the planner's best keyframe per asset, with its time.

The planner (:mod:`search.vectors.planner`) decides between an exact scan of the candidates and a
filtered ANN search, and re-checks every hit against the SQL filter.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np

from assetlens.search.filters.ast import Filter
from assetlens.search.filters.columns import ColumnCache
from assetlens.search.filters.fields import FieldSchema
from assetlens.search.store import Store
from assetlens.search.vectors.index import VectorIndex
from assetlens.search.vectors.planner import Planner


class VectorSearch:
    """Finds the best assets for a query vector among those that pass a filter.

    Args:
        store: The library's store.
        index: Its vector index.
        columns: Its filter column cache, when shared with other sessions (default: a new one
            reading ``store``).
    """

    def __init__(self, store: Store, index: VectorIndex, columns: ColumnCache | None = None) -> None:
        self.store = store
        self.planner = Planner(index, columns if columns is not None else ColumnCache(store), store)

    def search(
        self,
        vector: np.ndarray,
        condition: Filter,
        k: int,
        schema: FieldSchema | None = None,
        now: datetime | None = None,
    ) -> tuple[list[tuple[int, float, float | None]], dict[str, Any]]:
        """Top ``k`` assets as ``(asset_id, cosine, t)``, best first, and how they were found.

        ``now`` is the moment relative dates in ``condition`` refer to (default: now).
        """
        result = self.planner.search(vector, condition, k, per_asset=True, schema=schema, now=now)
        owners = self.store.vector_owners([h.vector_id for h in result.hits])
        found = [
            (h.asset_id, float(h.score), owners[h.vector_id][1]) for h in result.hits if h.vector_id in owners
        ]
        found.sort(key=lambda item: (-item[1], item[0]))
        return found, result.explain()
