"""An in-memory, columnar copy of the filterable asset fields, so filters evaluate in milliseconds.

SQL over JSON scans every asset (hundreds of milliseconds at a million); here a filter becomes a
few numpy operations over arrays. The semantics are exactly those of
:func:`search.filters.compile_filter`, which stays the authority: the planner re-checks final
results with it, and anything this cache cannot evaluate exactly (a full-text match, an odd value)
is evaluated by SQL for that part of the filter only.

Every field is a column of *elements*: what SQL's ``json_each`` yields for a meta value (the value,
or each item of a list, or each member of an object), and one element (none when NULL) for a
built-in field. An element has a JSON type, a number (NaN when not numeric) and a code into the
column's dictionary of texts; dates and booleans of texts come from per-dictionary tables, the
dates normalised by SQLite itself (``strftime``), so time zones and odd spellings agree with SQL.
A term matches a row if any of its elements matches; ``ne``/``nin`` are the complement, as in SQL.
Tags are kept as ``(row, tag, score)`` entries. Columns are built on first use.

Staleness: every change to an asset or its tags bumps the store's ``assets_epoch`` and logs the
asset (``asset_changes``). :meth:`ColumnCache.refresh` re-reads only the assets changed since its
epoch, and at most every ``refresh_seconds``, so a search during an ingest does not rebuild.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import numpy as np

from search.fields import FieldSchema, check_meta_name, coerce_value
from search.filter_ast import And, Cmp, Filter, Not, Or, TagIs
from search.filter_sql import BUILTIN_FIELDS, _Compiler, _date_sql, compile_filter
from search.store import Store

TEXT, INTEGER, REAL, TRUE, FALSE, NULL, ARRAY, OBJECT, DEAD = range(9)
_SQL_KIND = {
    "text": TEXT, "integer": INTEGER, "real": REAL, "true": TRUE, "false": FALSE,
    "null": NULL, "array": ARRAY, "object": OBJECT,
}  # fmt: skip
_EXACT = 2.0**53  # numbers beyond this are not exact in float64: SQL decides
_MOMENT = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})")
_PERIOD = re.compile(r"\d{4}(?:-\d{2}(?:-\d{2}(?:T\d{2}:\d{2}:\d{2})?)?)?")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_TRUE_WORDS, _FALSE_WORDS = ("true", "yes", "on"), ("false", "no", "off")
_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "gt": lambda x, p: x > p,
    "gte": lambda x, p: x >= p,
    "lt": lambda x, p: x < p,
    "lte": lambda x, p: x <= p,
}


class _Unsupported(Exception):
    """This term cannot be evaluated exactly from the cache: SQL evaluates it."""


class _Grow:
    """A numpy array with amortised appends."""

    def __init__(self, dtype: Any) -> None:
        self.data, self.n = np.zeros(1024, dtype), 0

    def extend(self, values: Iterable[Any] | np.ndarray) -> None:
        values = np.asarray(values if isinstance(values, np.ndarray) else list(values), self.data.dtype)
        if self.n + len(values) > len(self.data):
            grown = np.zeros(max(2 * len(self.data), self.n + len(values)), self.data.dtype)
            grown[: self.n] = self.data[: self.n]
            self.data = grown
        self.data[self.n : self.n + len(values)] = values
        self.n += len(values)

    @property
    def view(self) -> np.ndarray:
        return self.data[: self.n]


class _Column:
    """One field's elements: row, JSON type, number and text code, plus per-text tables.

    Views derived from the elements (texts, dates, booleans, the row layout) are cached until the
    column changes: queries then cost one comparison and one scatter over the elements.
    """

    def __init__(self, builtin: bool) -> None:
        self.builtin = builtin  # built-in booleans compare as numbers; meta ones by the words rule
        self.row, self.type = _Grow(np.int32), _Grow(np.uint8)
        self.num, self.code = _Grow(np.float64), _Grow(np.int32)
        self.words: list[str] = []
        self.codes: dict[str, int] = {}
        self.dates = _Grow(np.int64)  # per text: normalised date as YYYYMMDDHHMMSS, -1 if none
        self.bools = _Grow(np.int64)  # per text: 1 true/yes/on, 0 false/no/off, -1 other
        self.supported, self.dead = True, 0
        self._views: dict[str, Any] = {}

    def ingest(self, rows: np.ndarray, kinds: np.ndarray, nums: np.ndarray, texts: list[Any]) -> None:
        """Append elements: rows (-1: an asset the cache does not hold, skipped), JSON types,
        numbers (NaN when not numeric) and the texts of the TEXT elements, in order."""
        if np.any(kinds == DEAD):
            self.supported = False  # a value of a type filters do not compare (a BLOB)
        numeric = (kinds == INTEGER) | (kinds == REAL)
        if not np.all(np.abs(nums[numeric]) <= _EXACT):
            self.supported = False  # too big (or not finite) for float64 to compare exactly
        codes = np.full(len(rows), -1, np.int32)
        codes[kinds == TEXT] = self._encode(texts)
        keep = rows >= 0
        self.row.extend(rows[keep])
        self.type.extend(kinds[keep])
        self.num.extend(nums[keep])
        self.code.extend(codes[keep])
        self._views.clear()

    def _encode(self, texts: list[Any]) -> np.ndarray:
        codes = self.codes
        for word in dict.fromkeys(texts):  # C-speed de-duplication, then codes for new words
            if word not in codes:
                codes[word] = len(self.words)
                self.words.append(word)
        return np.fromiter(map(codes.__getitem__, texts), np.int32, len(texts))

    def drop_rows(self, rows: np.ndarray) -> None:
        """Orphan the elements of rows about to be re-read (they never match again)."""
        gone = np.isin(self.row.view, rows) & (self.type.view != DEAD)
        self.type.view[gone] = DEAD
        self.num.view[gone] = math.nan
        self.code.view[gone] = -1
        self.dead += int(gone.sum())
        self._views.clear()

    def _view(self, name: str, make: Callable[[], Any]) -> Any:
        if name not in self._views:
            self._views[name] = make()
        return self._views[name]

    # -- typed views over elements (invalid: -1 code/date, NaN number, -1 boolean) --

    def texts(self) -> np.ndarray:
        return self._view("texts", lambda: np.where(self.type.view == TEXT, self.code.view, -1))

    def dates_view(self, store: Store) -> np.ndarray:
        """Per element: its text as a date (SQLite's ``strftime`` rules, so zones and odd
        spellings agree with SQL) coded YYYYMMDDHHMMSS, -1 when not a date."""
        if new := self.words[self.dates.n :]:
            self.dates.extend(_date_code(d) for d in store.map_texts(_date_sql("j.value"), new))
            self._views.pop("dates", None)
        return self._view("dates", lambda: np.append(self.dates.view, -1)[self.texts()])

    def booleans(self) -> np.ndarray:
        """Per element: 1/0 for true/false (and, for meta, the words SQL reads as such), else -1."""
        if self.builtin:
            return self._view("bools", lambda: np.nan_to_num(self.num.view, nan=-1).astype(np.int8))
        if new := self.words[self.bools.n :]:
            lowered = (w.strip(" ").translate(_ASCII_LOWER) for w in new)  # SQLite's trim and lower
            self.bools.extend(1 if w in _TRUE_WORDS else 0 if w in _FALSE_WORDS else -1 for w in lowered)
            self._views.pop("bools", None)

        def make() -> np.ndarray:
            kinds = self.type.view
            words = np.append(self.bools.view, -1).astype(np.int8)[self.texts()]
            return np.where(kinds == TRUE, 1, np.where(kinds == FALSE, 0, words)).astype(np.int8)

        return self._view("bools", make)

    def word_table(self, test: Callable[[str], bool]) -> np.ndarray:
        return np.fromiter((test(w) for w in self.words), bool, len(self.words))

    def rows_mask(self, hits: np.ndarray, n_rows: int) -> np.ndarray:
        """Rows with at least one hit among their elements."""
        layout = self._view("layout", lambda: self._layout(n_rows))
        if isinstance(layout, str) and layout == "identity":
            return hits.copy()
        if layout is not None and len(layout) == n_rows:
            return np.append(hits, False)[layout]  # at most one element per row: a gather
        mask = np.zeros(n_rows, bool)
        mask[self.row.view[hits]] = True
        return mask

    def _layout(self, n_rows: int) -> Any:
        rows = self.row.view
        if self.dead == 0 and len(rows) == n_rows and np.array_equal(rows, np.arange(n_rows)):
            return "identity"  # one element per row, in row order: hits are the row mask
        live = np.flatnonzero(self.type.view != DEAD)
        if len(live) and np.bincount(rows[live], minlength=n_rows).max() > 1:
            return None  # lists: scatter
        single = np.full(n_rows, len(rows), np.int64)  # no element -> the False appended to hits
        single[rows[live]] = live
        return single

    def memory(self) -> int:
        arrays = (self.row, self.type, self.num, self.code, self.dates, self.bools)
        views = sum(v.nbytes for v in self._views.values() if isinstance(v, np.ndarray))
        return sum(a.data.nbytes for a in arrays) + views + sum(len(w) + 90 for w in self.words)


def _date_code(text: str | None) -> int:
    m = _MOMENT.fullmatch(text) if isinstance(text, str) else None
    return int("".join(m.groups())) if m else -1


def _period(param: str) -> tuple[int, int]:
    """``[lo, hi)`` of YYYYMMDDHHMMSS codes for a date period P: ``x >= P`` and ``x < P~`` in SQL."""
    if not isinstance(param, str) or not _PERIOD.fullmatch(param):
        raise _Unsupported(param)
    digits = re.sub(r"\D", "", param)
    scale = 10 ** (14 - len(digits))
    return int(digits) * scale, (int(digits) + 1) * scale


class ColumnCache:
    """Filterable fields of every asset, as numpy columns; ``evaluate(filter)`` gives a row mask.

    Args:
        store: The library's store.
        refresh_seconds: Look for changes at most this often (:meth:`refresh`).
        clock: Monotonic seconds (tests pass their own).
    """

    def __init__(
        self, store: Store, refresh_seconds: float = 2.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.store, self.refresh_seconds, self.clock = store, refresh_seconds, clock
        self.lock = threading.RLock()
        self.epoch, self.version, self.checked = -1, 0, -math.inf
        self.ids = _Grow(np.int64)  # asset id of each row
        self.present = _Grow(np.bool_)  # False once the asset is deleted
        self.row_of = np.full(0, -1, np.int32)  # asset id -> row
        self.columns: dict[str, _Column] = {}
        self.tags: _Column | None = None  # elements: tag (lowercased) as text, score as number
        self.fallbacks: list[str] = []  # terms SQL evaluated in the last evaluate()
        self.build_seconds = 0.0

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
            started = time.perf_counter()
            changed = self.store.assets_changed_since(self.epoch) if self.epoch >= 0 else None
            if changed is None or len(changed) > max(1000, self.ids.n // 4):
                self._rebuild()
            else:
                self._apply(changed)
            self.epoch, self.version = epoch, self.version + 1
            self.build_seconds = time.perf_counter() - started
            return True

    def _rebuild(self) -> None:
        self.ids, self.present = _Grow(np.int64), _Grow(np.bool_)
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

    def rows_of(self, asset_ids: np.ndarray | list[int]) -> np.ndarray:
        """Rows of asset ids (-1 for assets the cache does not hold)."""
        ids = np.asarray(asset_ids, dtype=np.int64)
        inside = (ids >= 0) & (ids < len(self.row_of))
        out = np.full(len(ids), -1, np.int32)
        out[inside] = self.row_of[ids[inside]]
        return out

    # --- columns, built on first use -------------------------------------------------------

    def column(self, field: str) -> _Column:
        """The column of a built-in field or of ``meta.NAME`` (read from the store on first use)."""
        with self.lock:
            if field not in self.columns:
                column = _Column(builtin=field in BUILTIN_FIELDS)
                self._read(field, column, None)
                self.columns[field] = column
            return self.columns[field]

    def _read(self, field: str, column: _Column, ids: list[int] | None) -> None:
        if field in BUILTIN_FIELDS:
            for found, values in self.store.asset_values(BUILTIN_FIELDS[field].sql, ids):
                self._ingest_builtin(column, BUILTIN_FIELDS[field].type, found, values)
            return
        name = check_meta_name(field.removeprefix("meta."))
        path = "$" + "".join(f'."{part}"' for part in name.split("."))
        # SQLite's json_each yields the elements, so lists, objects and types agree with SQL.
        for found, types, values in self.store.meta_elements(path, ids):
            kinds = np.fromiter(map(_SQL_KIND.__getitem__, types), np.uint8, len(types))
            nums = np.full(len(values), math.nan)
            numeric = np.flatnonzero((kinds == INTEGER) | (kinds == REAL))
            objects = np.array(values, dtype=object)
            nums[numeric] = objects[numeric].astype(np.float64)
            column.ingest(self.rows_of(found), kinds, nums, objects[kinds == TEXT].tolist())

    def _ingest_builtin(self, column: _Column, kind: str, found: list[int], values: list[Any]) -> None:
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

    def tag_column(self) -> _Column:
        """Tags as elements: the tag lowercased by SQLite (as filters compare it) and its score."""
        with self.lock:
            if self.tags is None:
                self.tags = _Column(builtin=True)
                self._read_tags(self.tags, None)
            return self.tags

    def _read_tags(self, column: _Column, ids: list[int] | None) -> None:
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
        """Bytes held by the rows, the columns built so far and the tags."""
        columns = [*self.columns.values(), *([self.tags] if self.tags is not None else [])]
        base = self.ids.data.nbytes + self.present.data.nbytes + self.row_of.nbytes
        return base + sum(c.memory() for c in columns)

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
            self.fallbacks = []
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
        except _Unsupported:
            pass
        return self._sql(f, compiler)

    def _sql(self, f: Filter, compiler: _Compiler) -> np.ndarray:
        # Full text (indexed FTS) and terms the cache cannot decide exactly: ask SQLite.
        self.fallbacks.append(type(f).__name__ if not isinstance(f, Cmp) else f"{f.field} {f.op}")
        sql, params = compile_filter(f, schema=compiler.schema, now=compiler.now)
        mask = np.zeros(self.ids.n, bool)
        rows = self.rows_of(self.store.matching_asset_ids(sql, params))
        mask[rows[rows >= 0]] = True
        return mask

    def _rows(self, column: _Column, hits: np.ndarray) -> np.ndarray:
        return column.rows_mask(hits, self.ids.n)

    def _tag(self, f: TagIs) -> np.ndarray:
        column = self.tag_column()
        code = column.codes.get(f.tag.translate(_ASCII_LOWER), -1)
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
            raise _Unsupported(c.field)
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
        hits = self._compare(column, op, typed)
        mask = self._rows(column, hits)
        return ~mask if op != c.op else mask

    def _compare(self, column: _Column, op: str, typed: list[tuple[str, Any, tuple[str, ...]]]) -> np.ndarray:
        if op in ("eq", "in"):
            hits = np.zeros(column.row.n, bool)
            for kind in dict.fromkeys(k for k, _, _ in typed):
                params = [p for k, p, _ in typed if k == kind]
                if kind == "date":
                    dates = column.dates_view(self.store)
                    for p in params:
                        lo, hi = _period(p)
                        hits |= (dates >= lo) & (dates < hi)
                elif kind == "string":
                    hits |= self._in_texts(column, params)
                elif kind == "number":
                    if any(abs(p) > _EXACT for p in params):
                        raise _Unsupported(params)
                    hits |= _any_equal(column.num.view, params)
                elif kind == "boolean":
                    hits |= _any_equal(column.booleans(), params)
            if texts := list(dict.fromkeys(t for _, _, ts in typed for t in ts)):
                hits |= self._in_texts(column, texts)
            return hits
        kind, param, _ = typed[0]
        if kind == "date":
            dates = column.dates_view(self.store)
            lo, hi = _period(param)
            bound = lo if op in ("gte", "lt") else hi
            return dates >= bound if op in ("gt", "gte") else (dates >= 0) & (dates < bound)
        if kind == "string":
            table = np.append(column.word_table(lambda w: bool(_OPS[op](w, param))), False)
            return table[column.texts()]
        if kind == "number":
            if abs(param) > _EXACT:
                raise _Unsupported(param)
            with np.errstate(invalid="ignore"):
                return np.asarray(_OPS[op](column.num.view, float(param)))
        raise _Unsupported(kind)

    def _in_texts(self, column: _Column, texts: list[Any]) -> np.ndarray:
        codes = [column.codes[t] for t in texts if isinstance(t, str) and t in column.codes]
        if len(codes) <= 4:
            return _any_equal(column.texts(), codes)
        table = np.zeros(len(column.words) + 1, bool)
        table[codes] = True
        return table[column.texts()]


def _any_equal(values: np.ndarray, params: list[Any]) -> np.ndarray:
    """``values IN params``: a few ``==`` beat ``np.isin`` for the short lists filters have."""
    out = np.zeros(len(values), bool)
    for p in params:
        out |= values == p
    return out
