"""Filtered vector search that stays exact-or-near-exact at every selectivity.

The planner first counts the candidates: the filter becomes a mask over assets
(:class:`search.filters.columns.ColumnCache`, milliseconds), joined to the index rows (vectors). Then:

* few candidate vectors (``exact_max``, 32k by default) -> an exact scan of exactly those rows
  (``knn_inner_products_by_idx`` reads each selected vector in place, one thread, no OpenMP:
  ~5 ms for 10k and ~13 ms for 30k vectors of 512-d on 2 cores; recall 1). An ``ivfpq`` index
  reads them from its float16 re-rank file instead (``exact_max_reranked``, 4096: each row is a
  page fault through the page cache, ~2 us, and its filtered IVF search is cheap and near-exact);
* many -> the ANN index with an ``IDSelectorBitmap`` over the candidate rows, its effort
  (HNSW ``efSearch``, IVF ``nprobe``) raised as the filter gets more selective (the walk skips
  the rows the filter rejects, so it must visit more). Measured at 1M: 1-3% selectivity needs
  efSearch 2000-4000 for recall 0.95 (15-30 ms), where the exact scan is cheaper and exact; from
  5% on, efSearch ~1000-1600 keeps recall above 0.95 in under 10 ms;
* an index that is flat anyway -> FAISS's flat search (with the selector): exact;
* short of ``k`` results (ANN can run dry under a tight filter) -> more effort, then exact.

Every result is re-checked against the authoritative SQL (``WHERE a.id IN (...) AND <filter>``),
so a stale cache can only cost recall of the newest assets, never return a wrong or deleted one;
what the re-check rejects is excluded and the search repeated.

Results are per vector; ``per_asset=True`` widens the search until ``k`` distinct assets are in.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np

from assetlens.search.filters.ast import Filter
from assetlens.search.filters.columns import ColumnCache
from assetlens.search.filters.fields import FieldSchema
from assetlens.search.filters.sql import compile_filter
from assetlens.search.store import Store
from assetlens.search.vectors.index import VectorIndex


class Hit(NamedTuple):
    """One vector in a result list."""

    vector_id: int
    asset_id: int
    score: float


@dataclass(frozen=True)
class PlannerConfig:
    """Tuning of the planner (defaults measured at 1M x 512-d on 2 cores; see the benchmark).

    Attributes:
        exact_max: Candidate vectors up to which an exact scan beats a filtered ANN search.
        exact_max_reranked: The same for an ``ivfpq`` index (its exact scan reads float16 rows
            from the memory-mapped re-rank file).
        ann_boost: Filtered HNSW effort = base effort x ``(1 / selectivity) ** ann_boost``.
        ivf_boost: The same for IVF and IVF-PQ nprobe. Measured at 1M (nlist 4096, PQ64, a
            shortlist of 100 re-ranked): recall@10 0.99 unfiltered at nprobe 32, 0.99 at 10%
            with 64, 0.99 at 1% with 256, 0.98 at 0.1% with 1024: nprobe grows as
            ``selectivity ** -0.5``.
        max_effort: Ceiling of HNSW efSearch (IVF nprobe is capped at its list count).
        rounds: Re-check rounds (each excludes what SQL rejected and searches again).
        refresh_seconds: Look for store changes (index and columns) at most this often.
    """

    exact_max: int = 32_768
    exact_max_reranked: int = 4096
    ann_boost: float = 0.25
    ivf_boost: float = 0.5
    max_effort: int = 2048
    rounds: int = 3
    refresh_seconds: float = 2.0


@dataclass(frozen=True)
class PlanResult:
    """Hits, best first, and how they were found (for the explanation and the benchmark)."""

    hits: list[Hit]
    path: str  # "exact" | "ann" | "ann+exact" (ANN ran short) | "empty"
    candidates: int  # vectors that pass the filter (per the cache); -1 when unfiltered
    rows: int  # vectors in the index
    effort: int | None = None  # efSearch / nprobe of the last ANN call
    rejected: int = 0  # hits the SQL re-check removed (stale cache or deleted assets)
    sql_terms: tuple[str, ...] = ()  # filter terms SQL evaluated instead of the cache
    timings_ms: dict[str, float] = field(default_factory=dict)

    def explain(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "path": self.path, "candidates": self.candidates, "rows": self.rows, "effort": self.effort,
            "rejected": self.rejected, "sql_terms": list(self.sql_terms), "timings_ms": self.timings_ms,
        }  # fmt: skip


class Planner:
    """Plans and runs filtered vector searches over one library.

    Args:
        index: The vector index (synced on the first search, then every ``refresh_seconds``).
        columns: The column cache of the same store.
        store: The store (the SQL re-check).
        config: Thresholds and efforts.
    """

    def __init__(
        self, index: VectorIndex, columns: ColumnCache, store: Store, config: PlannerConfig | None = None
    ) -> None:
        self.index, self.columns, self.store = index, columns, store
        self.config = config or PlannerConfig()
        self._per_asset: tuple[int, float] | None = None
        self._synced = -math.inf

    def refresh(self, force: bool = False) -> None:
        """Bring the index and the columns level with the store (throttled)."""
        now = time.monotonic()
        if force or now - self._synced >= self.config.refresh_seconds:
            self._synced = now
            self.index.sync(save=False)
        self.columns.refresh(force=force)

    def search(
        self,
        query: np.ndarray,
        filter: Filter | None = None,
        k: int = 10,
        *,
        per_asset: bool = False,
        schema: FieldSchema | None = None,
        now: datetime | None = None,
    ) -> PlanResult:
        """The best ``k`` vectors (or assets) for ``query`` among those passing ``filter``.

        Args:
            query: ``(dim,)`` float32 unit vector.
            filter: The whole condition as an AST (the caller's fixed parts too, e.g.
                ``And((Cmp("ingest_status", "eq", "ok"), user_filter))``), or None.
            k: Hits wanted.
            per_asset: Keep each asset's best vector only, widening until ``k`` assets.
            schema: Declared meta field types (as for ``compile_filter``).
            now: The moment for relative dates (default: now, the same for cache and SQL).

        Raises:
            FilterError: The filter does not compile (the same errors as ``compile_filter``).
        """
        now = now or datetime.now(UTC)
        where, params = compile_filter(filter, schema=schema, now=now) if filter is not None else ("1", [])
        self.refresh()
        # One search at a time per index: FAISS must not add to an HNSW graph while it is searched.
        with self.index.lock:
            return self._run(query, filter, k, per_asset, schema, now, where, params)

    def _run(
        self,
        query: np.ndarray,
        filter: Filter | None,
        k: int,
        per_asset: bool,
        schema: FieldSchema | None,
        now: datetime,
        where: str,
        params: list[Any],
    ) -> PlanResult:
        started = time.perf_counter()
        timings: dict[str, float] = {}
        allowed: np.ndarray | None = None
        sql_terms: tuple[str, ...] = ()
        if filter is not None:
            # A shared cache must not refresh between the mask and its join to the index rows.
            with self.columns.lock:
                amask = self.columns.evaluate(filter, schema=schema, now=now)
                sql_terms = tuple(self.columns.fallbacks)
                allowed = self._vector_mask(amask)
        timings["filter"] = _ms(started)
        query = np.ascontiguousarray(query, dtype=np.float32)
        rejected, path, effort = 0, "empty", None
        hits: list[Hit] = []
        rows_total = len(self.index.ids)
        count = -1 if allowed is None else int(np.count_nonzero(allowed))
        for _ in range(self.config.rounds):
            t0 = time.perf_counter()
            hits, path, effort = self._search(query, allowed, count, k, per_asset)
            timings["search"] = timings.get("search", 0.0) + _ms(t0)
            t0 = time.perf_counter()
            assets = np.array(sorted({h.asset_id for h in hits}), np.int64)
            passed = self.store.matching_asset_ids(where, params, ids=assets.tolist())
            timings["recheck"] = timings.get("recheck", 0.0) + _ms(t0)
            stale = np.setdiff1d(assets, passed)
            if not len(stale):
                break
            rejected += len(stale)
            drop = np.isin(self.index.assets, stale)
            allowed = ~drop if allowed is None else allowed & ~drop
            count = int(np.count_nonzero(allowed & self.index.alive))
            gone = set(stale.tolist())
            hits = [h for h in hits if h.asset_id not in gone]
        timings["total"] = _ms(started)
        return PlanResult(hits, path, count, rows_total, effort, rejected, sql_terms, timings)

    def _vector_mask(self, amask: np.ndarray) -> np.ndarray:
        """Asset mask (cache rows) -> vector mask (index rows); vectors of unknown assets fail."""
        join = self.columns.join_rows(self.index.assets, (id(self.index), self.index.version))
        return (amask if join is None else np.append(amask, False)[join]) & self.index.alive

    def _vectors_per_asset(self) -> float:
        if self._per_asset is None or self._per_asset[0] != self.index.version:
            owners = self.index.assets[self.index.alive]
            ratio = len(owners) / max(len(np.unique(owners)), 1)
            self._per_asset = (self.index.version, ratio)
        return self._per_asset[1]

    def _search(
        self, query: np.ndarray, allowed: np.ndarray | None, count: int, k: int, per_asset: bool
    ) -> tuple[list[Hit], str, int | None]:
        index, cfg = self.index, self.config
        live = index.size
        if live == 0 or count == 0:
            return [], "empty", None
        want = k if not per_asset else math.ceil(k * self._vectors_per_asset() * 1.5)
        total = count if allowed is not None else live
        exact_max = cfg.exact_max_reranked if index.kind == "ivfpq" else cfg.exact_max
        if allowed is not None and count <= exact_max:
            rows = np.flatnonzero(allowed)
            return (
                self._widen(lambda n: index.scan_rows(query, rows, n), want, k, per_asset, total),
                "exact",
                None,
            )
        if index.kind == "flat":  # FAISS's own flat search (BLAS, selector): exact too
            return (
                self._widen(lambda n: index.search_rows(query, n, allowed), want, k, per_asset, total),
                "exact",
                None,
            )
        selectivity = (count if allowed is not None else live) / live
        if index.kind == "hnsw":
            base, boost = index.config.hnsw_ef_search, cfg.ann_boost
        else:
            base, boost = index.config.ivf_nprobe, cfg.ivf_boost
        effort = int(min(cfg.max_effort, math.ceil(base * (1 / selectivity) ** boost)))
        for attempt in range(3):
            n = min(want, total)
            scores, rows = index.search_rows(query, n, allowed, effort=self._effort(effort, n))
            hits = self._hits(scores, rows, per_asset)
            if len(rows) >= n and (not per_asset or len(hits) >= min(k, total)):
                return hits[:k], "ann", effort
            if per_asset and len(rows) >= n and want < total:
                want *= 4  # enough vectors, too few distinct assets: ask for more vectors
            elif attempt < 2:
                effort = min(effort * 4, cfg.max_effort * 4)  # the filtered walk ran dry: dig deeper
        rows_all = np.flatnonzero(allowed if allowed is not None else index.alive)
        found = self._widen(lambda n: index.scan_rows(query, rows_all, n), want, k, per_asset, len(rows_all))
        return found, "ann+exact", effort

    def _effort(self, effort: int, n: int) -> int:
        if self.index.kind == "hnsw":
            return max(effort, n)  # efSearch below k returns fewer than k
        return min(effort, int(self.index.state.params.get("nlist", effort)))

    def _widen(self, run: Any, want: int, k: int, per_asset: bool, total: int) -> list[Hit]:
        while True:
            n = min(want, total)
            scores, rows = run(n)
            hits = self._hits(scores, rows, per_asset)
            if not per_asset or len(hits) >= k or n >= total:
                return hits[:k]
            want *= 4

    def _hits(self, scores: np.ndarray, rows: np.ndarray, per_asset: bool) -> list[Hit]:
        ids, owners = self.index.ids[rows], self.index.assets[rows]
        out: list[Hit] = []
        seen: set[int] = set()
        for score, vid, aid in zip(scores.tolist(), ids.tolist(), owners.tolist(), strict=True):
            if per_asset:
                if aid in seen:
                    continue  # a worse keyframe of an asset already in
                seen.add(aid)
            out.append(Hit(vid, aid, score))
        return out


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 3)
