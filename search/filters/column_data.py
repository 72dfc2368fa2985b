"""Element columns of the filter cache (:mod:`search.filters.columns`): storage, typed views, comparisons.

A column holds one field's *elements* (what ``json_each`` yields for a meta value; one per
non-NULL built-in value): row, JSON type, number and a code into the column's dictionary of texts.
Views derived from them (texts, dates, booleans, the row layout) are cached until the column
changes, so a comparison costs one vectorised pass over the elements.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from assetlens.search.filters.sql import _META_BOOL, _date_sql
from assetlens.search.store import Store

TEXT, INTEGER, REAL, TRUE, FALSE, NULL, ARRAY, OBJECT, DEAD = range(9)
SQL_KIND = {
    "text": TEXT, "integer": INTEGER, "real": REAL, "true": TRUE, "false": FALSE,
    "null": NULL, "array": ARRAY, "object": OBJECT,
}  # fmt: skip
EXACT = 2.0**53  # numbers beyond this are not exact in float64: SQL decides
MOMENT = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})")
PERIOD = re.compile(r"\d{4}(?:-\d{2}(?:-\d{2}(?:T\d{2}:\d{2}:\d{2})?)?)?")
OPS: dict[str, Callable[[Any, Any], Any]] = {
    "gt": lambda x, p: x > p,
    "gte": lambda x, p: x >= p,
    "lt": lambda x, p: x < p,
    "lte": lambda x, p: x <= p,
}


class Unsupported(Exception):
    """This term cannot be evaluated exactly from the cache: SQL evaluates it."""


class Growable:
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


class Column:
    """One field's elements: row, JSON type, number and text code, plus per-text tables.

    Views derived from the elements (texts, dates, booleans, the row layout) are cached until the
    column changes: queries then cost one comparison and one scatter over the elements.
    """

    def __init__(self, builtin: bool) -> None:
        self.builtin = builtin  # built-in booleans compare as numbers; meta ones by the words rule
        self.row, self.type = Growable(np.int32), Growable(np.uint8)
        self.num, self.code = Growable(np.float64), Growable(np.int32)
        self.words: list[str] = []
        self.codes: dict[str, int] = {}
        self.dates = Growable(np.int64)  # per text: normalised date as YYYYMMDDHHMMSS, -1 if none
        self.bools = Growable(np.int64)  # per text: 1 true/yes/on, 0 false/no/off, -1 other
        self.supported, self.dead = True, 0
        self._views: dict[str, Any] = {}

    def ingest(self, rows: np.ndarray, kinds: np.ndarray, nums: np.ndarray, texts: list[Any]) -> None:
        """Append elements: rows (-1: an asset the cache does not hold, skipped), JSON types,
        numbers (NaN when not numeric) and the texts of the TEXT elements, in order."""
        if np.any(kinds == DEAD):
            self.supported = False  # a value of a type filters do not compare (a BLOB)
        numeric = (kinds == INTEGER) | (kinds == REAL)
        if not np.all(np.abs(nums[numeric]) <= EXACT):
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
            self.dates.extend(date_code(d) for d in store.map_texts(_date_sql("j.value"), new))
            self._views.pop("dates", None)
        return self._view("dates", lambda: np.append(self.dates.view, -1)[self.texts()])

    def booleans(self, store: Store) -> np.ndarray:
        """Per element: 1/0 for true/false (and, for meta, the words SQL reads as such), else -1."""
        if self.builtin:
            return self._view("bools", lambda: np.nan_to_num(self.num.view, nan=-1).astype(np.int8))
        if new := self.words[self.bools.n :]:  # the words SQL reads as booleans, read by SQL
            self.bools.extend(-1 if b is None else int(b) for b in store.map_texts(_META_BOOL, new))
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

    def compare(self, op: str, typed: list[tuple[str, Any, tuple[str, ...]]], store: Store) -> np.ndarray:
        """Elements matching ``op`` (eq, in, gt, gte, lt, lte) against values typed by the compiler."""
        if op in ("eq", "in"):
            hits = np.zeros(self.row.n, bool)
            for kind in dict.fromkeys(k for k, _, _ in typed):
                params = [p for k, p, _ in typed if k == kind]
                if kind == "date":
                    dates = self.dates_view(store)
                    for p in params:
                        lo, hi = period(p)
                        hits |= (dates >= lo) & (dates < hi)
                elif kind == "string":
                    hits |= self.in_texts(params)
                elif kind == "number":
                    if any(abs(p) > EXACT for p in params):
                        raise Unsupported(params)
                    hits |= any_equal(self.num.view, params)
                elif kind == "boolean":
                    hits |= any_equal(self.booleans(store), params)
            if texts := list(dict.fromkeys(t for _, _, ts in typed for t in ts)):
                hits |= self.in_texts(texts)
            return hits
        kind, param, _ = typed[0]
        if kind == "date":
            dates = self.dates_view(store)
            lo, hi = period(param)
            bound = lo if op in ("gte", "lt") else hi
            return dates >= bound if op in ("gt", "gte") else (dates >= 0) & (dates < bound)
        if kind == "string":
            table = np.append(self.word_table(lambda w: bool(OPS[op](w, param))), False)
            return table[self.texts()]
        if kind == "number":
            if abs(param) > EXACT:
                raise Unsupported(param)
            with np.errstate(invalid="ignore"):
                return np.asarray(OPS[op](self.num.view, float(param)))
        raise Unsupported(kind)

    def in_texts(self, texts: list[Any]) -> np.ndarray:
        codes = [self.codes[t] for t in texts if isinstance(t, str) and t in self.codes]
        if len(codes) <= 4:
            return any_equal(self.texts(), codes)
        table = np.zeros(len(self.words) + 1, bool)
        table[codes] = True
        return table[self.texts()]

    def memory(self) -> int:
        arrays = (self.row, self.type, self.num, self.code, self.dates, self.bools)
        views = sum(v.nbytes for v in self._views.values() if isinstance(v, np.ndarray))
        return sum(a.data.nbytes for a in arrays) + views + sum(len(w) + 90 for w in self.words)


def date_code(text: str | None) -> int:
    m = MOMENT.fullmatch(text) if isinstance(text, str) else None
    return int("".join(m.groups())) if m else -1


def period(param: str) -> tuple[int, int]:
    """``[lo, hi)`` of YYYYMMDDHHMMSS codes for a date period P: ``x >= P`` and ``x < P~`` in SQL."""
    if not isinstance(param, str) or not PERIOD.fullmatch(param):
        raise Unsupported(param)
    digits = re.sub(r"\D", "", param)
    scale = 10 ** (14 - len(digits))
    return int(digits) * scale, (int(digits) + 1) * scale


def any_equal(values: np.ndarray, params: list[Any]) -> np.ndarray:
    """``values IN params``: a few ``==`` beat ``np.isin`` for the short lists filters have."""
    out = np.zeros(len(values), bool)
    for p in params:
        out |= values == p
    return out
