"""Bulk writes of imported embeddings (:mod:`search.catalog.vector_import`): whole batches of assets,
vectors and tags in a few statements each, so millions of rows import at tens of thousands a second.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from assetlens.search.store.base import StoreBase, _chunks
from assetlens.search.store.records import now_iso

# Rows an import reads and writes per transaction. Smaller batches stay in the CPU's caches and
# in memory the allocator reuses: 10k gave ~5% more rows/s than 50k, with ~10% less CPU per row
# (BENCHMARKS.md, issue 12).
BATCH_ROWS = 10_000


class ImportsMixin(StoreBase):
    """Assets, vectors and tags written a batch at a time (call inside a transaction)."""

    def asset_ids_for_uris(self, uris: Sequence[str]) -> dict[str, int]:
        """Ids of the assets among ``uris`` that exist."""
        out: dict[str, int] = {}
        for start in range(0, len(uris), 500):
            chunk = list(uris[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for aid, uri in self.db.execute(f"SELECT id, uri FROM assets WHERE uri IN ({marks})", chunk):
                out[str(uri)] = int(aid)
        return out

    def add_imported_assets(
        self, rows: Sequence[tuple[str, str | None, str | None, str | None, str]]
    ) -> list[int]:
        """Insert new assets ``(uri, kind, mime, created, meta JSON)``; returns their ids in order.

        Ids follow the largest id (the caller holds the write lock), so the rows go in a thousand
        per statement and no id has to be read back.
        """
        first = int(self.db.execute("SELECT coalesce(max(id), 0) FROM assets").fetchone()[0]) + 1
        at = now_iso()
        ids = list(range(first, first + len(rows)))
        self._insert_rows(
            "INSERT INTO assets (id, uri, kind, mime, size, mtime, created, ingested_at, status, meta) "
            "VALUES",
            "(?, ?, ?, ?, 0, 0, ?, ?, 'ok', ?)",
            [(aid, *row[:4], at, row[4]) for aid, row in zip(ids, rows, strict=True)],
        )
        return ids

    def imported_state(self, asset_ids: Sequence[int]) -> dict[int, tuple[str, str | None]]:
        """``(meta JSON, created)`` of existing assets, to tell an unchanged re-import."""
        out: dict[int, tuple[str, str | None]] = {}
        for chunk in _chunks(list(asset_ids), 500):
            marks = ",".join("?" * len(chunk))
            for aid, meta, created in self.db.execute(
                f"SELECT id, meta, created FROM assets WHERE id IN ({marks})", chunk
            ):
                out[int(aid)] = (str(meta), created)
        return out

    def update_imported_assets(self, rows: Sequence[tuple[str | None, str | None, int]]) -> None:
        """Merge meta (a JSON object, or None to keep) and set ``created`` (None keeps it) by id."""
        self.db.executemany(
            "UPDATE assets SET meta = CASE WHEN ?1 IS NULL THEN meta ELSE json_patch(meta, ?1) END, "
            "created = coalesce(?2, created) WHERE id = ?3",
            rows,
        )

    def vectors_at(self, asset_ids: Sequence[int]) -> dict[tuple[int, float | None], tuple[int, bytes]]:
        """``(asset id, t) -> (vector id, stored bytes)`` of the given assets."""
        out: dict[tuple[int, float | None], tuple[int, bytes]] = {}
        for chunk in _chunks(list(asset_ids), 500):
            marks = ",".join("?" * len(chunk))
            for vid, aid, t, blob in self.db.execute(
                f"SELECT id, asset_id, t, vector FROM vectors WHERE asset_id IN ({marks})", chunk
            ):
                out[(int(aid), t)] = (int(vid), bytes(blob))
        return out

    def first_vector_ids(self, asset_ids: Sequence[int]) -> dict[int, int]:
        """The lowest vector id of each asset (where an export writes the asset's own fields)."""
        out: dict[int, int] = {}
        for chunk in _chunks(list(asset_ids), 500):
            marks = ",".join("?" * len(chunk))
            for aid, vid in self.db.execute(
                f"SELECT asset_id, min(id) FROM vectors WHERE asset_id IN ({marks}) GROUP BY asset_id", chunk
            ):
                out[int(aid)] = int(vid)
        return out

    def add_vector_rows(self, rows: Sequence[tuple[int, float | None, str, bytes]]) -> None:
        """Insert ``(asset id, t, model, stored bytes)`` rows."""
        self._insert_rows("INSERT INTO vectors (asset_id, t, model, vector) VALUES", "(?, ?, ?, ?)", rows)

    def _insert_rows(self, insert: str, values: str, rows: Sequence[Sequence[Any]]) -> None:
        """``insert`` (``INSERT INTO t (...) VALUES``) of ``rows``, each bound to the ``values``
        template, hundreds of rows per statement: an ``executemany`` pays SQLite's per-statement
        work for every row, about 1 us of the 2 us a vector row took (a million-row import)."""
        width = values.count("?")
        per_statement = max(1, min(1000, self.db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // width))
        for start in range(0, len(rows), per_statement):
            part = rows[start : start + per_statement]
            self.db.execute(f"{insert} {', '.join([values] * len(part))}", [v for row in part for v in row])

    def delete_vector_rows(self, vector_ids: Sequence[int]) -> None:
        """Delete vectors by id (each delete moves the vector epoch: indexes mark them gone)."""
        self.db.executemany("DELETE FROM vectors WHERE id = ?", [(int(v),) for v in vector_ids])

    def tags_by_source(self, asset_ids: Sequence[int]) -> dict[tuple[int, str], list[tuple[Any, ...]]]:
        """``(asset id, source) -> sorted [(tag, score, model, t)]`` of the given assets."""
        out: dict[tuple[int, str], list[tuple[Any, ...]]] = {}
        for chunk in _chunks(list(asset_ids), 500):
            marks = ",".join("?" * len(chunk))
            for aid, tag, score, source, model, t in self.db.execute(
                f"SELECT asset_id, tag, score, source, model, t FROM tags WHERE asset_id IN ({marks})", chunk
            ):
                out.setdefault((int(aid), str(source)), []).append((tag, score, model, t))
        return {key: sorted(value) for key, value in out.items()}

    def replace_tag_rows(
        self,
        replaced: Sequence[tuple[int, str]],
        rows: Sequence[tuple[int, str, float, str, str | None, float | None]],
    ) -> None:
        """Drop the tags of each ``(asset id, source)`` in ``replaced``, then insert ``rows``
        ``(asset id, tag, score, source, model, t)``."""
        self.db.executemany("DELETE FROM tags WHERE asset_id = ? AND source = ?", replaced)
        self.db.executemany(
            "INSERT OR REPLACE INTO tags (asset_id, tag, score, source, model, t) VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
