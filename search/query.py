"""The query engine: text, image and filter queries, hybrid ranking, calibration and paging.

One query may combine positive and negative phrases (weighted), an example image (a file, an
upload or a stored asset), full-text words and a filter. The semantic side encodes them into one
query vector (``sum(w * positive) + image - sum(w * negative)``, normalised) and asks the vector
search for the best keyframe per asset among the assets that pass the filter; the lexical side
looks the words up in file names, tags, metadata values, transcripts and the text read in
pictures (OCR) (SQLite FTS5: phrase, near, all words; BM25 inside each). ``mode`` picks one side
or fuses both by their calibrated relevance (:mod:`search.ranking`). Every result carries the raw
cosine, a relevance in [0, 1] (semantic, lexical or fused), and an explanation: the frame time,
the tags that match query words, how the words matched, the transcript segment, the OCR line
(text, box and frame time) and text fields that matched, and the filter it passed.

Results are per asset and ordered by (score, asset id), or by a field; pages follow each other
through a stable cursor (:mod:`search.paging`). ``collapse_duplicates`` keeps the best-ranked
member of each near-duplicate group (:mod:`search.duplicates`) and lists the others it hides;
the order being fixed, every page keeps the same member, so paging stays complete.

What it is asked and answers (:class:`Query`, :class:`Result`, :class:`Page`) is in
:mod:`search.query_types`.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
from PIL import Image

from assetlens.models.clip import ClipEncoder
from assetlens.search.errors import QueryError, QueryVectorError
from assetlens.search.filters import BUILTIN_FIELDS, And, Cmp, Filter, Not, compile_filter
from assetlens.search.filters.columns import ColumnCache
from assetlens.search.hits import Hit, explain, set_relevance
from assetlens.search.paging import Cursor, after, decode_cursor, fingerprint
from assetlens.search.query_types import MAX_LIMIT, Mode, Page, Query, Result, parse_text
from assetlens.search.ranking import Calibrator, LexicalQuery, Scale, lexical_relevance
from assetlens.search.store import Store
from assetlens.search.store.ocr import best_line
from assetlens.search.vectors.index import VectorIndex
from assetlens.search.vectors.search import VectorSearch

HYBRID_DEPTH = 500  # fused lists are this deep on every page, so fused scores never move between pages
BACKGROUND_SAMPLE = 2000


class SearchEngine:
    """Runs queries against one library.

    Args:
        store: The library's store.
        index: Its vector index.
        encoder: The CLIP encoder of the store's model.
        columns: A filter column cache shared with other engines of the same library (the HTTP
            API's pooled sessions); default: this engine's own.
    """

    def __init__(
        self,
        store: Store,
        index: VectorIndex,
        encoder: ClipEncoder,
        *,
        columns: ColumnCache | None = None,
    ) -> None:
        self.store, self.index, self.encoder = store, index, encoder
        self.vectors = VectorSearch(store, index, columns)
        self._calibrator: tuple[int, Calibrator] | None = None

    # --- the simple forms ------------------------------------------------------------------

    def search_text(self, text: str, limit: int = 20, mode: Mode = "hybrid") -> list[Result]:
        """Assets ranked for a text."""
        positives, negatives = parse_text(text)
        return self.search(Query(text=positives, negative=negatives, limit=limit, mode=mode)).results

    def similar_to_image(self, image: Image.Image, limit: int = 20) -> list[Result]:
        """Assets ranked by visual similarity to an image."""
        return self.search(Query(image=image, limit=limit, mode="semantic")).results

    def similar_to_asset(self, asset_id: int, limit: int = 20) -> list[Result]:
        """Assets visually similar to a stored asset (itself excluded)."""
        return self.search(Query(asset_id=asset_id, limit=limit, mode="semantic")).results

    # --- the engine ------------------------------------------------------------------------

    def search(self, query: Query) -> Page:
        """Run a query and return one page.

        Raises:
            QueryError: Nothing to search for, a bad cursor, sort or limit, or a model mismatch.
        """
        started = time.perf_counter()
        self._validate(query)
        digest = fingerprint(query.describe())
        numeric_key = query.sort in (None, "score")
        cursor = decode_cursor(query.cursor, digest, numeric_key=numeric_key) if query.cursor else None
        snapshot = cursor.snapshot if cursor else self.store.max_asset_id()
        schema = self._schema()
        condition = self._condition(query, snapshot)
        # One moment for the whole query: relative dates ("created>=now-7d") mean the same on the
        # vector side (planner) and the SQL side (lexical match, sorting).
        now = datetime.now(UTC)
        where, params = compile_filter(condition, schema=schema, now=now)
        vector = self._query_vector(query)
        field_sort = query.sort not in (None, "score")
        if vector is None and (query.mode == "semantic" or not query.text) and not field_sort:
            raise QueryError(
                "nothing to search for: give text, an image, an asset or a vector, "
                "or sort a filter by a field"
            )
        depth = HYBRID_DEPTH if query.mode == "hybrid" else (cursor.served if cursor else 0) + query.limit + 1
        hits, plan, scale = self._rank(
            query, vector, (condition, schema, where, params, now), depth, field_sort, cursor
        )
        if query.collapse_duplicates:
            wanted = (cursor.served if cursor else 0) + query.limit + 1
            kept = self._collapse(hits)
            # A list cut at ``depth`` may hold too few groups: look deeper (hybrid lists and field
            # sorts have a fixed depth already).
            while (
                len(kept) < wanted
                and len(hits) >= depth
                and depth < MAX_LIMIT * 10
                and not (field_sort or query.mode == "hybrid")
            ):
                depth = min(depth * 4, MAX_LIMIT * 10)
                hits, plan, scale = self._rank(
                    query, vector, (condition, schema, where, params, now), depth, field_sort, cursor
                )
                kept = self._collapse(hits)
            plan["collapsed"] = len(hits) - len(kept)
            hits = kept
        descending = not (field_sort and str(query.sort).endswith(":asc"))
        if cursor is not None:
            hits = [h for h in hits if after(h.sort_key, h.asset_id, cursor, descending)]
        page, more = hits[: query.limit], len(hits) > query.limit
        served = (cursor.served if cursor else 0) + len(page)
        next_cursor = None
        if more and page:
            last = page[-1]
            next_cursor = Cursor(last.sort_key, last.asset_id, served, snapshot, digest, scale).encode()
        results = self._results(page, query)
        took = round((time.perf_counter() - started) * 1000, 2)
        return Page(results, next_cursor, took, plan, query.describe())

    def _validate(self, query: Query) -> None:
        if not 1 <= query.limit <= MAX_LIMIT:
            raise QueryError(f"limit must be between 1 and {MAX_LIMIT}, got {query.limit}")
        if query.mode not in ("semantic", "lexical", "hybrid"):
            raise QueryError(f"unknown mode {query.mode!r}: use semantic, lexical or hybrid")
        if query.min_relevance is not None and not 0.0 <= query.min_relevance <= 1.0:
            raise QueryError(f"min_relevance must be between 0 and 1, got {query.min_relevance}")
        _, colon, direction = str(query.sort).partition(":")
        if colon and direction not in ("asc", "desc"):
            raise QueryError(f"sort direction must be asc or desc (FIELD:asc, FIELD:desc), got {direction!r}")
        stored = self.store.model_id
        if (
            stored is not None
            and stored != self.encoder.model_id
            and (query.text or query.image or query.asset_id)
        ):
            raise QueryError(
                f"this library was embedded with {stored}, but the query model is {self.encoder.model_id}: "
                f"set ASSETLENS_CLIP_MODEL (and ASSETLENS_CLIP_CHECKPOINT) to the library's model"
            )

    def _condition(self, query: Query, snapshot: int) -> Filter:
        """The whole condition a result must pass: ingested, inside the snapshot, the user's filter."""
        parts: list[Filter] = [Cmp("ingest_status", "eq", "ok"), Cmp("id", "lte", snapshot)]
        if query.asset_id is not None:
            parts.append(Not(Cmp("id", "eq", query.asset_id)))
        if query.filter is not None:
            parts.append(query.filter)
        return And(tuple(parts))

    def _schema(self) -> Any:
        from assetlens.search.catalog.meta import load_schema  # the field schema lives with the meta commands

        return load_schema(self.store)

    def _query_vector(self, query: Query) -> np.ndarray | None:
        parts: list[np.ndarray] = []
        if query.text and query.mode != "lexical":
            vectors = self.encoder.encode_texts([t for t, _ in query.text])
            parts.append(sum(w * v for (_, w), v in zip(query.text, vectors, strict=True)))
        if query.negative and query.mode != "lexical":
            vectors = self.encoder.encode_texts([t for t, _ in query.negative])
            parts.append(-sum(w * v for (_, w), v in zip(query.negative, vectors, strict=True)))
        if query.image is not None:
            parts.append(self.encoder.encode_images([query.image])[0])
        if query.asset_id is not None:
            stored, _ = self.store.vectors_of(query.asset_id)
            mean = stored.mean(axis=0)
            parts.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
        if query.vector is not None:
            parts.append(self._raw_vector(query.vector))
        if not parts:
            return None
        combined = np.sum(parts, axis=0).astype(np.float32)
        return combined / max(float(np.linalg.norm(combined)), 1e-12)

    def _raw_vector(self, vector: np.ndarray) -> np.ndarray:
        """A caller's embedding, checked against the library's vectors and normalised."""
        raw = np.asarray(vector, dtype=np.float64).reshape(-1)
        dim = self.store.vector_dim()
        if dim and len(raw) != dim:
            raise QueryVectorError(
                f"the query vector has {len(raw)} values, but this library's vectors "
                f"({self.store.model_id}) have {dim}"
            )
        if not np.isfinite(raw).all():
            raise QueryVectorError("the query vector holds NaN or infinite values")
        norm = float(np.linalg.norm(raw))
        if norm == 0.0:
            raise QueryVectorError("the query vector is all zeros: it has no direction to search in")
        return (raw / norm).astype(np.float32)

    def _rank(
        self,
        query: Query,
        vector: np.ndarray | None,
        condition: tuple[Filter, Any, str, list[Any], datetime],
        depth: int,
        field_sort: bool,
        cursor: Cursor | None,
    ) -> tuple[list[Hit], dict[str, Any], Scale | None]:
        """Both rankings of a query, each hit's relevance, and the order (minus ``min_relevance`` cuts);
        ``condition`` is (AST, schema, compiled SQL, parameters, now). Returns the calibration used."""
        ast, schema, where, params, now = condition
        scale = cursor.scale if cursor is not None else None
        plan: dict[str, Any] = {"mode": query.mode}
        hits: dict[int, Hit] = {}
        if vector is not None and query.mode != "lexical":
            k = depth if not field_sort else MAX_LIMIT * 10
            found, plan["vector"] = self.vectors.search(vector, ast, k, schema, now)
            for asset_id, score, t in found:
                hits[asset_id] = Hit(asset_id, score, t)
            if cursor is None:  # a later page keeps the first page's calibration (search.paging)
                scale = self._calibrator_now().scale(vector)
        words = " ".join(t for t, _ in query.text)
        lexical = LexicalQuery.of(words) if words and query.mode != "semantic" else None
        if lexical is not None:
            found_words = self.store.lexical_search(lexical.levels, where, params, depth)
            for rank, (asset_id, level, bm25, segment, ocr) in enumerate(found_words, 1):
                hit = hits.setdefault(asset_id, Hit(asset_id))
                hit.lexical_rank, hit.lexical_level, hit.segment, hit.ocr = rank, level, segment, ocr
                hit.lexical = lexical_relevance(level, bm25)
        set_relevance(hits, scale)
        cut = query.min_relevance
        if cut is not None:
            hits = {i: h for i, h in hits.items() if h.relevance is None or h.relevance >= cut}
        if field_sort:
            return self._field_sorted(query, hits, where, params), plan, scale
        if query.mode == "hybrid" and lexical is not None and vector is not None:
            # Fused relevance is per asset (not per list position): the same on every page.
            for hit in hits.values():
                hit.sort_key = round(float(hit.relevance or 0.0), 12)
        else:
            # One list: its own order (cosine, or the word match's level then BM25, as ranked in SQL).
            for hit in hits.values():
                hit.sort_key = round(hit.score, 9) if hit.score is not None else -float(hit.lexical_rank or 0)
        ordered = sorted(hits.values(), key=lambda h: (-h.sort_key, h.asset_id))
        return ordered, plan, scale

    def _collapse(self, hits: list[Hit]) -> list[Hit]:
        """The best-ranked hit of each near-duplicate group (``hits`` in order); the others are
        listed on it."""
        groups = self.store.duplicates.group_of([h.asset_id for h in hits])
        first: dict[int, Hit] = {}
        out = []
        for hit in hits:
            group = groups.get(hit.asset_id)
            if group is not None and group in first:
                first[group].hidden.append(hit.asset_id)
                continue
            if group is not None:
                first[group] = hit
            out.append(hit)
        return out

    def _field_sorted(self, query: Query, hits: dict[int, Hit], where: str, params: list[Any]) -> list[Hit]:
        name, _, direction = str(query.sort).partition(":")
        column = _sort_column(name)
        order = f"{column} IS NULL, {column} {'ASC' if direction == 'asc' else 'DESC'}, a.id"
        if (
            hits
            or query.text
            or query.image is not None
            or query.asset_id is not None
            or query.vector is not None
        ):
            if query.min_relevance is None and hits:
                raise QueryError(
                    "sorting a text or image query by a field needs min_relevance (which results count)"
                )
            ids = list(hits)
            if not ids:
                return []
            rows = self.store.sorted_asset_ids(
                f"{where} AND a.id IN ({','.join('?' * len(ids))})", [*params, *ids],
                (column, order), MAX_LIMIT * 10,
            )  # fmt: skip
        else:
            rows = self.store.sorted_asset_ids(where, params, (column, order), MAX_LIMIT * 10)
        out = []
        for asset_id, value in rows:
            hit = hits.get(asset_id) or Hit(asset_id)
            hit.sort_key = value
            out.append(hit)
        return out

    def _calibrator_now(self) -> Calibrator:
        # The index was synced by this query's vector search: its size is the store's count,
        # without a count(*) over the vectors table on every query (~5 ms at 1M).
        count = self.index.size or self.store.count_vectors()
        if self._calibrator is None or abs(self._calibrator[0] - count) > 0.1 * max(count, 1):
            self._calibrator = (count, Calibrator(self.store.sample_vectors(BACKGROUND_SAMPLE)))
        return self._calibrator[1]

    def _results(self, hits: list[Hit], query: Query) -> list[Result]:
        ids = [h.asset_id for h in hits]
        assets, tags = self.store.assets(ids), self.store.tags_of(ids)
        words = {w.lower() for t, _ in query.text for w in re.findall(r"\w+", t)}
        read = self.store.ocr.lines_by_asset([h.asset_id for h in hits if h.ocr])
        out = []
        for h in hits:
            asset = assets.get(h.asset_id)
            if asset is None:
                continue
            match = (
                "both" if h.score is not None and h.lexical_rank else ("text" if h.lexical_rank else "visual")
            )
            line = best_line(read.get(h.asset_id, []), words)
            # A video's time: the matched speech, else the frame whose text matched, else the best frame.
            t = h.segment["start"] if h.segment else line.t if line and line.t is not None else h.t
            explanation = explain(
                h, asset.uri, asset.meta, asset.embedded, tags[h.asset_id], words, query.filter
            )
            if line is not None:
                explanation["ocr"] = line.as_dict()
            if h.hidden:
                explanation["near_duplicates"] = list(h.hidden)
            result = Result(h.asset_id, asset.uri, asset.kind, h.score, t, tuple(tags[h.asset_id]),
                            h.segment, match, h.relevance, asset.meta, explanation)  # fmt: skip
            out.append(result)
        return out


def _sort_column(name: str) -> str:
    """SQL for a sort field: a built-in column, or a meta/embedded value (path as a literal we built)."""
    if name in BUILTIN_FIELDS:
        return BUILTIN_FIELDS[name].sql
    meta = name.removeprefix("meta.")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", meta):
        raise QueryError(f"cannot sort by {name!r}: give a built-in field or meta.NAME")
    return f"coalesce(json_extract(a.meta, '$.\"{meta}\"'), json_extract(a.embedded, '$.\"{meta}\"'))"
