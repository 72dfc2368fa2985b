"""An in-memory, columnar copy of the filterable asset fields, so filters evaluate in milliseconds.

SQL over JSON scans every asset (hundreds of milliseconds at a million); here a filter becomes a
few numpy operations over arrays. The semantics are exactly those of
:func:`search.filters.compile_filter`, which stays the authority: the planner re-checks final
results with it, and anything this cache cannot evaluate exactly (a full-text match, an odd value)
is evaluated by SQL for that part of the filter only.

Every field is a column of *elements*: what SQLite's ``json_each`` yields for a meta value (the
value, or each item of a list, or each member of an object; read with SQLite's own JSON functions),
and one element (none when NULL) for a built-in field (its SQL expression, evaluated by SQLite).
An element has a JSON type, a number (NaN when not numeric) and a code into the column's
dictionary of texts. Per-dictionary tables give each text as a date and as a boolean, computed by
SQLite with the very expressions the SQL filter uses (``strftime`` for dates, so zones and odd
spellings agree; ``lower(trim())`` for words like ``yes``); tags are lowercased by SQLite too.
Values filters would type in the compiler are typed by the compiler itself (``_Compiler.values``).
A term matches a row if any of its elements matches; ``ne``/``nin`` are the complement, as in SQL.
Tags are kept as elements (the tag, its score as the number). Columns are built on first use
(about 5 s per field per million assets on 2 busy cores) and then patched, never rebuilt.

Staleness: every change to an asset or its tags bumps the store's ``assets_epoch`` and logs the
asset (``asset_changes``). :meth:`ColumnCache.refresh` re-reads only the assets changed since its
epoch, and at most every ``refresh_seconds``, so a search during an ingest does not rebuild.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from datetime import UTC, datetime
from typing import Any

import numpy as np

from assetlens.search.filters.ast import And, Cmp, Filter, Not, Or, TagIs
from assetlens.search.filters.column_data import (
    DEAD,
    INTEGER,
    NULL,
    REAL,
    SQL_KIND,
    TEXT,
    Column,
    Growable,
    Unsupported,
)
from assetlens.search.filters.fields import FieldSchema, coerce_value, meta_path
from assetlens.search.filters.sql import BUILTIN_FIELDS, _Compiler, compile_filter
from assetlens.search.store import Store


class ColumnCache:
    """Filterable fields of every asset, as numpy columns; ``evaluate(filter)`` gives a row mask.

    Thread-safe, so one cache can serve many sessions (the HTTP API shares one across its pooled
    connections: built once, held once). Every read of the store happens under :attr:`lock`, so
    the store connection must be the cache's own; a caller that joins a mask to other arrays
    holds :attr:`lock` across both, so that no refresh lands in between.

    Args:
        store: The library's store (a connection used by this cache only, when it is shared).
        refresh_seconds: Look for changes at most this often (:meth:`refresh`).
        clock: Monotonic seconds (tests pass their own).
    """

    def __init__(
        self, store: Store, refresh_seconds: float = 2.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.store, self.refresh_seconds, self.clock = store, refresh_seconds, clock
        self.lock = threading.RLock()
        self.epoch, self.version, self.checked = -1, 0, -math.inf
        self.ids = Growable(np.int64)  # asset id of each row
        self.present = Growable(np.bool_)  # False once the asset is deleted
        self.row_of = np.full(0, -1, np.int32)  # asset id -> row
        self.columns: dict[str, Column] = {}
        self.tags: Column | None = None  # elements: tag (lowercased) as text, score as number
        self._join: tuple[tuple[Hashable, int], np.ndarray | None] | None = None  # see join_rows
        self._local = threading.local()  # per thread: the SQL fallbacks of its last evaluate()
        self._lowered: dict[str, str] = {}

    # --- keeping in step -------------------------------------------------------------------

    def refresh(self, force: bool = False) -> bool:
        """Apply the store's changes since the last refresh (at most every ``refresh_seconds``).

        Returns:
            Whether anything changed.
        """
        with self.lock:
            now = self.clock()
            if not force and now - self.checked < self.refresh_seconds:
                return False
            self.checked = now
            epoch = self.store.assets_epoch  # read first: changes landing meanwhile are re-read later
            if epoch == self.epoch:
                return False
            changed = self.store.assets_changed_since(self.epoch) if self.epoch >= 0 else None
            if changed is None or len(changed) > max(1000, self.ids.n // 4):
                self._rebuild()
            else:
                self._apply(changed)
            self.epoch, self.version = epoch, self.version + 1
            return True

    def _rebuild(self) -> None:
        self.ids, self.present = Growable(np.int64), Growable(np.bool_)
        self.ids.extend(self.store.asset_ids())
        self.present.extend(np.ones(self.ids.n, bool))
        self._index_rows()
        self.columns, self.tags = {}, None  # rebuilt on first use

    def _index_rows(self) -> None:
        ids = self.ids.view
        top = int(ids.max()) + 1 if len(ids) else 0
        if top > 64 * max(len(ids), 1_000_000):
            raise ValueError(f"asset ids up to {top} are too sparse for a dense row map")
        self.row_of = np.full(top, -1, np.int32)
        self.row_of[ids] = np.arange(len(ids), dtype=np.int32)

    def _apply(self, changed: np.ndarray) -> None:
        found = {a for ids, _ in self.store.asset_values("1", ids=changed.tolist()) for a in ids}
        known = self.rows_of(changed)
        new = [int(a) for a, r in zip(changed, known, strict=True) if r < 0 and int(a) in found]
        if new:
            self.ids.extend(new)
            self.present.extend(np.ones(len(new), bool))
            self._index_rows()
        rows = self.rows_of(changed)
        rows = rows[rows >= 0]
        self.present.view[rows] = np.isin(self.ids.view[rows], list(found))
        for name, column in list(self.columns.items()):
            if column.dead > column.row.n // 2:
                del self.columns[name]  # mostly orphaned elements: rebuild on next use
                continue
            column.drop_rows(rows)
            self._read(name, column, changed.tolist())
        if self.tags is not None:
            self.tags.drop_rows(rows)
            self._read_tags(self.tags, changed.tolist())

    def join_rows(self, owners: np.ndarray, owners_key: Hashable) -> np.ndarray | None:
        """The cache row of each vector's asset (-1: unknown), or None when they are the rows in order.

        Remembered per ``owners_key`` (the index and its version) and cache version, so the
        sessions sharing this cache and one index compute and hold it once.
        """
        with self.lock:
            key = (owners_key, self.version)
            if self._join is None or self._join[0] != key:
                rows = self.rows_of(owners)
                # One vector per asset, in the same order (a library of stills): no gather needed.
                identity = len(rows) == self.ids.n and np.array_equal(rows, np.arange(len(rows)))
                self._join = (key, None if identity else rows)
            return self._join[1]

    def rows_of(self, asset_ids: np.ndarray | list[int]) -> np.ndarray:
        """Rows of asset ids (-1 for assets the cache does not hold)."""
        ids = np.asarray(asset_ids, dtype=np.int64)
        inside = (ids >= 0) & (ids < len(self.row_of))
        out = np.full(len(ids), -1, np.int32)
        out[inside] = self.row_of[ids[inside]]
        return out

    # --- columns, built on first use -------------------------------------------------------

    def column(self, field: str) -> Column:
        """The column of a built-in field or of ``meta.NAME`` (read from the store on first use)."""
        with self.lock:
            if field not in self.columns:
                column = Column(builtin=field in BUILTIN_FIELDS)
                self._read(field, column, None)
                self.columns[field] = column
            return self.columns[field]

    def _read(self, field: str, column: Column, ids: list[int] | None) -> None:
        if field in BUILTIN_FIELDS:
            for found, values in self.store.asset_values(BUILTIN_FIELDS[field].sql, ids):
                self._ingest_builtin(column, BUILTIN_FIELDS[field].type, found, values)
            return
        path = meta_path(field.removeprefix("meta."))
        # SQLite's json_each yields the elements, so lists, objects and types agree with SQL.
        for found, types, values in self.store.meta_elements(path, ids):
            kinds = np.fromiter(map(SQL_KIND.__getitem__, types), np.uint8, len(types))
            nums = np.full(len(values), math.nan)
            numeric = np.flatnonzero((kinds == INTEGER) | (kinds == REAL))
            objects = np.array(values, dtype=object)
            nums[numeric] = objects[numeric].astype(np.float64)
            column.ingest(self.rows_of(found), kinds, nums, objects[kinds == TEXT].tolist())

    def _ingest_builtin(self, column: Column, kind: str, found: list[int], values: list[Any]) -> None:
        rows = self.rows_of(found)
        if kind in ("number", "boolean"):
            try:
                nums = np.array(values, dtype=np.float64)  # None -> NaN
            except (TypeError, ValueError):
                column.supported = False  # text in a number column: SQL compares it its own way
                return
            present = ~np.isnan(nums)
            kinds = np.full(int(present.sum()), REAL, np.uint8)
            column.ingest(rows[present], kinds, nums[present], [])
            return
        present = np.fromiter((v is not None for v in values), bool, len(values))
        texts = [v for v in values if v is not None]
        if not all(type(v) is str for v in texts):
            column.supported = False
            return
        kinds = np.full(len(texts), TEXT, np.uint8)
        column.ingest(rows[present], kinds, np.full(len(texts), math.nan), texts)

    def tag_column(self) -> Column:
        """Tags as elements: the tag lowercased by SQLite (as filters compare it) and its score."""
        with self.lock:
            if self.tags is None:
                self.tags = Column(builtin=True)
                self._read_tags(self.tags, None)
            return self.tags

    def _read_tags(self, column: Column, ids: list[int] | None) -> None:
        for found, tags, scores in self.store.tag_rows(ids):
            kinds = np.full(len(tags), TEXT, np.uint8)
            column.ingest(self.rows_of(found), kinds, np.array(scores, np.float64), tags)

    def warm(self, fields: Iterable[str], tags: bool = False) -> None:
        """Build columns now (first queries would otherwise pay for reading them)."""
        self.refresh(force=self.epoch < 0)
        for name in fields:
            self.column(name if name in BUILTIN_FIELDS else "meta." + name.removeprefix("meta."))
        if tags:
            self.tag_column()

    def memory_bytes(self) -> int:
        """Bytes held by the rows, the columns built so far, the tags and the join to the index."""
        columns = [*self.columns.values(), *([self.tags] if self.tags is not None else [])]
        base = self.ids.data.nbytes + self.present.data.nbytes + self.row_of.nbytes
        join = self._join[1] if self._join is not None and self._join[1] is not None else None
        return base + sum(c.memory() for c in columns) + (join.nbytes if join is not None else 0)

    @property
    def fallbacks(self) -> list[str]:
        """Terms SQLite evaluated in this thread's last :meth:`evaluate` (full text, odd values)."""
        return list(getattr(self._local, "fallbacks", []))

    @property
    def rows(self) -> int:
        """Rows held (deleted assets included, never matching)."""
        return self.ids.n

    # --- evaluation ------------------------------------------------------------------------

    def evaluate(
        self, f: Filter | None, *, schema: FieldSchema | None = None, now: datetime | None = None
    ) -> np.ndarray:
        """Rows passing a filter, as a bool mask over :attr:`rows` (deleted assets never pass).

        Args:
            f: The filter (None: every asset).
            schema: Declared meta field types, as given to ``compile_filter``.
            now: The moment for relative dates; pass the one the SQL re-check uses.
        """
        with self.lock:
            if self.epoch < 0:
                self.refresh(force=True)
            self._local.fallbacks = []
            compiler = _Compiler(schema or FieldSchema({}), now or datetime.now(UTC))
            present = self.present.view.copy()
            return present if f is None else self._node(f, compiler) & present

    def _node(self, f: Filter, compiler: _Compiler) -> np.ndarray:
        if isinstance(f, And | Or):
            masks = [self._node(item, compiler) for item in f.items]
            return np.logical_and.reduce(masks) if isinstance(f, And) else np.logical_or.reduce(masks)
        if isinstance(f, Not):
            return ~self._node(f.item, compiler)
        try:
            if isinstance(f, TagIs):
                return self._tag(f)
            if isinstance(f, Cmp):
                return self._cmp(f, compiler)
        except Unsupported:
            pass
        return self._sql(f, compiler)

    def _sql(self, f: Filter, compiler: _Compiler) -> np.ndarray:
        # Full text (indexed FTS) and terms the cache cannot decide exactly: ask SQLite.
        self._local.fallbacks.append(type(f).__name__ if not isinstance(f, Cmp) else f"{f.field} {f.op}")
        sql, params = compile_filter(f, schema=compiler.schema, now=compiler.now)
        mask = np.zeros(self.ids.n, bool)
        rows = self.rows_of(self.store.matching_asset_ids(sql, params))
        mask[rows[rows >= 0]] = True
        return mask

    def _rows(self, column: Column, hits: np.ndarray) -> np.ndarray:
        return column.rows_mask(hits, self.ids.n)

    def _tag(self, f: TagIs) -> np.ndarray:
        column = self.tag_column()
        if f.tag not in self._lowered:  # lowercased by SQLite itself, as the SQL filter does
            if len(self._lowered) > 10_000:
                self._lowered.clear()
            self._lowered[f.tag] = str(self.store.map_texts("lower(j.value)", [f.tag])[0])
        code = column.codes.get(self._lowered[f.tag], -1)
        if code < 0:
            return np.zeros(self.ids.n, bool)
        hits = column.code.view == code
        if f.min_score is not None:
            hits &= column.num.view >= float(f.min_score)
        return self._rows(column, hits)

    def _cmp(self, c: Cmp, compiler: _Compiler) -> np.ndarray:
        spec = BUILTIN_FIELDS.get(c.field)
        declared = spec.type if spec is not None else compiler.schema.type_of(c.field.removeprefix("meta."))
        column = self.column(c.field)
        if not column.supported:
            raise Unsupported(c.field)
        kinds = column.type.view
        if c.op == "exists":
            return self._rows(column, (kinds != NULL) & (kinds != DEAD))
        if c.op == "prefix":
            if spec is not None:
                value = str(c.value).lower() if spec.lower else str(c.value)
            else:
                value = coerce_value(c.field, "string", c.value)
            table = np.append(column.word_table(lambda w: w.startswith(value)), False)
            return self._rows(column, table[column.texts()])
        op = {"ne": "eq", "nin": "in"}.get(c.op, c.op)
        typed = compiler.values(c, declared)
        hits = column.compare(op, typed, self.store)
        mask = self._rows(column, hits)
        return ~mask if op != c.op else mask
