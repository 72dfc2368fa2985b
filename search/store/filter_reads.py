"""Filter reads in the store: the change log of assets (``assets_epoch``, ``asset_changes``) and the
bulk column reads the filter column cache is built from (``search.filters.columns``), and the assets passing a
compiled filter (``search.filters``), matched or sorted by SQLite.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from assetlens.search.store.base import StoreBase, _chunks


class FilterReadsMixin(StoreBase):
    """Bulk and filtered reads of ``assets`` and ``tags``."""

    # --- filter column cache (search.filters.columns) ----------------------------------------------

    @property
    def assets_epoch(self) -> int:
        """Grows with every change to an asset or its tags; a filter cache built at another epoch is stale."""
        return int(self.get_state("assets_epoch") or 0)

    def assets_changed_since(self, epoch: int) -> np.ndarray:
        """Ids of the assets inserted, updated, deleted or retagged after ``epoch`` (sorted)."""
        rows = self.db.execute("SELECT asset_id FROM asset_changes WHERE epoch > ? ORDER BY 1", (epoch,))
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def asset_ids(self) -> np.ndarray:
        """Every asset id, sorted."""
        rows = self.db.execute("SELECT id FROM assets ORDER BY id")
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def _tuples(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        # Plain tuples: sqlite3.Row objects cost a third more on million-row reads.
        cursor = self.db.cursor()
        cursor.row_factory = None
        return cursor.execute(sql, params).fetchall()

    def _id_ranges(
        self, ids: Sequence[int] | None, batch: int, column: str = "a.id"
    ) -> Iterator[tuple[str, list[int]]]:
        # Whole-table reads go by ranges of ids (each query short, so no long-lived cursor);
        # reads of some assets go by chunks of ids.
        if ids is not None:
            for chunk in _chunks(sorted({int(i) for i in ids}), 500):
                yield f"{column} IN ({','.join('?' * len(chunk))})", chunk
            return
        low, high = self.db.execute("SELECT min(id), max(id) FROM assets").fetchone()
        if low is None:
            return
        for start in range(int(low), int(high) + 1, batch):
            yield f"{column} >= ? AND {column} < ?", [start, start + batch]

    def asset_values(
        self, expression: str, ids: Sequence[int] | None = None, batch: int = 100_000
    ) -> Iterator[tuple[list[int], list[Any]]]:
        """``(asset ids, values)`` of an SQL expression over ``assets a`` (built by our code: the
        built-in fields of ``search.filters``), for every asset or for ``ids``, by batches."""
        for where, params in self._id_ranges(ids, batch):
            sql = f"SELECT a.id, {expression} FROM assets a WHERE {where}"
            rows = self._tuples(sql, params)
            if rows:
                found, values = zip(*rows, strict=True)
                yield list(found), list(values)

    def meta_elements(
        self, path: str, ids: Sequence[int] | None = None, batch: int = 100_000
    ) -> Iterator[tuple[list[int], list[str], list[Any]]]:
        """``(asset ids, JSON types, values)`` of what ``json_each`` yields for the value at ``path``
        of user meta, else of embedded metadata: the value itself, or each item of a list, or each
        member of an object. The elements a meta filter compares (``search.filters``)."""
        source = "json_each(coalesce(a.meta -> ?, a.embedded -> ?)) j"
        for where, params in self._id_ranges(ids, batch):
            sql = f"SELECT a.id, j.type, j.value FROM assets a, {source} WHERE {where}"
            rows = self._tuples(sql, [path, path, *params])
            if rows:
                found, types, values = zip(*rows, strict=True)
                yield list(found), list(types), list(values)

    def tag_rows(
        self, ids: Sequence[int] | None = None, batch: int = 100_000
    ) -> Iterator[tuple[list[int], list[str], list[float]]]:
        """``(asset ids, tags lowercased by SQLite, scores)`` of every tag (or of the assets ``ids``)."""
        for where, params in self._id_ranges(ids, batch, column="asset_id"):
            rows = self._tuples(f"SELECT asset_id, lower(tag), score FROM tags WHERE {where}", params)
            if rows:
                found, tags, scores = zip(*rows, strict=True)
                yield list(found), list(tags), list(scores)

    def map_texts(self, expression: str, texts: Sequence[str]) -> list[Any]:
        """``expression`` (SQL over ``j.value``, built by our code) evaluated by SQLite for each text."""
        out: list[Any] = []
        for start in range(0, len(texts), 50_000):
            chunk = list(texts[start : start + 50_000])
            rows = self.db.execute(
                f"SELECT {expression} FROM json_each(?) j ORDER BY j.key", (json.dumps(chunk),)
            ).fetchall()
            out.extend(r[0] for r in rows)
        return out

    # --- compiled filters (search.filters, search.vectors.planner, search.query) -------------------

    def matching_asset_ids(
        self, where: str, params: Sequence[Any], ids: Sequence[int] | None = None
    ) -> np.ndarray:
        """Sorted ids of the assets passing a compiled filter (among ``ids`` when given)."""
        if ids is None:
            rows = self.db.execute(f"SELECT a.id FROM assets a WHERE ({where}) ORDER BY 1", list(params))
            return np.fromiter((r[0] for r in rows), dtype=np.int64)
        found: list[int] = []
        for chunk in _chunks(sorted({int(i) for i in ids}), 500):
            marks = ",".join("?" * len(chunk))
            found.extend(
                r[0]
                for r in self.db.execute(
                    f"SELECT a.id FROM assets a WHERE a.id IN ({marks}) AND ({where})", [*chunk, *params]
                )
            )
        return np.array(sorted(found), dtype=np.int64)

    def sorted_asset_ids(
        self, where: str, params: Sequence[Any], order: tuple[str, str], limit: int
    ) -> list[tuple[int, Any]]:
        """``(asset_id, value)`` of assets passing a filter.

        ``order`` is (value SQL, ORDER BY SQL), both built by our code from known fields.
        """
        rows = self.db.execute(
            f"SELECT a.id, {order[0]} FROM assets a WHERE {where} ORDER BY {order[1]} LIMIT ?",
            [*params, limit],
        )
        return [(int(r[0]), r[1]) for r in rows]
