"""Filters: one AST, a JSON and a string syntax, compiled to parametrised SQL over ``assets a``.

JSON (programs)::

    {"and": [{"field": "kind", "eq": "image"}, {"field": "meta.region", "in": ["DE", "AT"]},
             {"not": {"field": "meta.status", "eq": "draft"}}, {"tag": "shoe", "min_score": 0.25},
             {"text": "spring collection"}]}

String (people, CLI), the same filter::

    kind:image region:(DE OR AT) -status:draft tag:shoe>=0.25 "spring collection"

A name that is not a built-in field means ``meta.NAME`` (``status`` is ``meta.status``; the
ingest result ok/failed is the built-in ``ingest_status``). Both syntaxes give the same AST.

The parts: ``search.filters.ast`` (the nodes, limits, shared checks), ``search.filters.syntax``
(the string grammar), ``search.filters.sql`` (built-in fields, typing, compilation); this module
reads JSON, writes it back (``to_json``), picks a syntax (``parse_filter``) and re-exports the
public API.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from assetlens.search.errors import FieldTypeError, FilterError
from assetlens.search.filters.ast import (
    MAX_DEPTH,
    MAX_INPUT,
    MAX_LIST,
    MAX_STRING,
    MAX_TERMS,
    MAX_VALUES,
    OPS,
    And,
    Cmp,
    Filter,
    NearDuplicateOf,
    Not,
    OcrMatch,
    Or,
    TagIs,
    TextMatch,
    _Budget,
    _check_length,
    _check_shape,
    _show,
)
from assetlens.search.filters.fields import parse_number
from assetlens.search.filters.sql import (
    BUILTIN_FIELDS,
    NEAR_DUPLICATE_OF,
    Builtin,
    _canonical_field,
    _check_builtin,
    _check_text,
    compile_filter,
    fts_query,
    near_duplicate_ids,
)
from assetlens.search.filters.syntax import OCR_FIELD, parse_string

__all__ = [
    "BUILTIN_FIELDS",
    "MAX_DEPTH",
    "MAX_INPUT",
    "MAX_LIST",
    "MAX_STRING",
    "MAX_TERMS",
    "MAX_VALUES",
    "OPS",
    "And",
    "Builtin",
    "Cmp",
    "Filter",
    "NearDuplicateOf",
    "Not",
    "OcrMatch",
    "Or",
    "TagIs",
    "TextMatch",
    "compile_filter",
    "fts_query",
    "parse_filter",
    "parse_json",
    "parse_string",
    "to_json",
]


def _relocated(
    exc: FilterError, prefix: str, *, position: int | None = None, path: str | None = None
) -> FilterError:
    message = f"{prefix}{exc}"
    if isinstance(exc, FieldTypeError):
        return FieldTypeError(
            exc.field, exc.expected, exc.value, message=message, position=position, path=path
        )
    return FilterError(message, position=position, path=path)


# --- JSON syntax -----------------------------------------------------------------------------


def parse_json(doc: Mapping[str, Any] | str) -> Filter:
    """Parse the JSON form (a mapping, or its JSON text).

    Raises:
        FilterError: Malformed, with ``path`` (``$.and[2].field``) leading the message.
    """
    if isinstance(doc, str):
        _check_length(doc)
        try:
            doc = json.loads(doc)
        except RecursionError:
            raise FilterError(f"$: nested deeper than {MAX_DEPTH} levels", path="$") from None
        except ValueError as exc:
            where = f"line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else "$"
            raise FilterError(f"invalid JSON filter at {where}: {exc}", path="$") from None
    return _JsonReader().node(doc, "$", 1)


class _JsonReader:
    def __init__(self) -> None:
        self.budget = _Budget()

    def fail(self, path: str, message: str) -> FilterError:
        return FilterError(f"{path}: {message}", path=path)

    def spend(self, path: str, terms: int, values: int) -> None:
        if (problem := self.budget.spend(terms, values)) is not None:
            raise self.fail(path, problem)

    def node(self, doc: Any, path: str, depth: int) -> Filter:
        if depth > MAX_DEPTH:
            raise self.fail(path, f"nested deeper than {MAX_DEPTH} levels")
        if not isinstance(doc, Mapping):
            raise self.fail(path, f'expected a filter object ({{"field": ..., "eq": ...}}), got {_show(doc)}')
        keys = list(doc)
        for key in ("and", "or", "not"):
            if key in doc:
                if len(keys) != 1:
                    raise self.fail(path, f"{key!r} must be the only key of its object, found {keys}")
                if key == "not":
                    return Not(self.node(doc[key], f"{path}.not", depth + 1))
                items = doc[key]
                if not isinstance(items, list) or not items:
                    raise self.fail(f"{path}.{key}", "expected a non-empty list of filters")
                nodes = tuple(self.node(x, f"{path}.{key}[{i}]", depth + 1) for i, x in enumerate(items))
                return And(nodes) if key == "and" else Or(nodes)
        if "field" in doc:
            return self.field(doc, path)
        if "tag" in doc:
            if extra := [k for k in keys if k not in ("tag", "min_score")]:
                raise self.fail(path, f"unknown keys {extra} in a tag filter (valid: tag, min_score)")
            return self.tag(doc["tag"], doc.get("min_score"), path)
        if "text" in doc:
            if len(keys) != 1:
                raise self.fail(path, f"'text' must be the only key of its object, found {keys}")
            text = self.string(doc["text"], f"{path}.text")
            self.spend(path, 1, 1)
            try:
                _check_text(text)
            except FilterError as exc:
                raise _relocated(exc, f"{path}.text: ", path=f"{path}.text") from None
            return TextMatch(text)
        raise self.fail(path, f"unknown filter with keys {keys} (expected field, tag, text, and, or, not)")

    def string(self, value: Any, path: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(path, f"expected a non-empty string, got {_show(value)}")
        if len(value) > MAX_STRING:
            raise self.fail(path, f"string longer than {MAX_STRING} characters")
        return value

    def scalar(self, value: Any, path: str) -> Any:
        if isinstance(value, str):
            if len(value) > MAX_STRING:
                raise self.fail(path, f"string longer than {MAX_STRING} characters")
            return value
        if isinstance(value, bool | int) or (isinstance(value, float) and math.isfinite(value)):
            return value
        hint = " (use exists to test presence)" if value is None else ""
        raise self.fail(path, f"expected a string, number or boolean, got {_show(value)}{hint}")

    def tag(self, tag: Any, min_score: Any, path: str) -> TagIs:
        name = self.string(tag, f"{path}.tag")
        self.spend(path, 1, 1)
        if min_score is None:
            return TagIs(name)
        if parse_number(min_score) is None or isinstance(min_score, str):
            raise self.fail(f"{path}.min_score", f"expected a number, got {_show(min_score)}")
        return TagIs(name, float(min_score))

    def field(self, doc: Mapping[str, Any], path: str) -> Filter:
        if doc["field"] == OCR_FIELD:
            return self.ocr(doc, path)
        if doc["field"] == NEAR_DUPLICATE_OF:
            return self.near_duplicate(doc, path)
        try:
            name = _canonical_field(doc["field"])
        except FilterError as exc:
            raise _relocated(exc, f"{path}.field: ", path=f"{path}.field") from None
        ops = [k for k in doc if k != "field"]
        if unknown := [k for k in ops if k not in OPS]:
            raise self.fail(f"{path}.field", f"unknown operator {unknown[0]!r} (valid: {', '.join(OPS)})")
        if len(ops) != 1:
            raise self.fail(path, f"a field filter takes exactly one operator, found {ops or 'none'}")
        op, value, vpath = ops[0], doc[ops[0]], f"{path}.{ops[0]}"
        if op == "exists":
            if not isinstance(value, bool):
                raise self.fail(vpath, f"expected true or false, got {_show(value)}")
            self.spend(path, 1, 0)
            return Cmp(name, op, True) if value else Not(Cmp(name, op, True))
        if op in ("in", "nin"):
            if not isinstance(value, list) or not value or len(value) > MAX_LIST:
                raise self.fail(vpath, f"expected a list of 1 to {MAX_LIST} values, got {_show(value)}")
            value = tuple(self.scalar(v, f"{vpath}[{i}]") for i, v in enumerate(value))
        elif op == "prefix":
            value = self.string(value, vpath)
        else:
            value = self.scalar(value, vpath)
        self.spend(path, 1, len(value) if isinstance(value, tuple) else 1)
        try:
            _check_builtin(name, op, value)
        except FilterError as exc:
            raise _relocated(exc, f"{vpath}: ", path=vpath) from None
        return Cmp(name, op, value)

    def ocr(self, doc: Mapping[str, Any], path: str) -> Filter:
        ops = [k for k in doc if k != "field"]
        if len(ops) != 1 or ops[0] not in ("eq", "ne", "exists"):
            raise self.fail(path, f"ocr takes one of eq (words in the text read), ne or exists, found {ops}")
        op, vpath = ops[0], f"{path}.{ops[0]}"
        self.spend(path, 1, 1)
        if op == "exists":
            if not isinstance(doc[op], bool):
                raise self.fail(vpath, f"expected true or false, got {_show(doc[op])}")
            return OcrMatch() if doc[op] else Not(OcrMatch())
        text = self.string(doc[op], vpath)
        try:
            _check_text(text)
        except FilterError as exc:
            raise _relocated(exc, f"{vpath}: ", path=vpath) from None
        return OcrMatch(text) if op == "eq" else Not(OcrMatch(text))

    def near_duplicate(self, doc: Mapping[str, Any], path: str) -> Filter:
        ops = [k for k in doc if k != "field"]
        if len(ops) != 1 or ops[0] not in ("eq", "ne", "in", "nin"):
            raise self.fail(
                path, f"near_duplicate_of takes one of eq, ne (an asset id), in or nin (ids), found {ops}"
            )
        op, vpath = ops[0], f"{path}.{ops[0]}"
        value = doc[op]
        if op in ("in", "nin") and (not isinstance(value, list) or not value or len(value) > MAX_LIST):
            raise self.fail(vpath, f"expected a list of 1 to {MAX_LIST} asset ids, got {_show(value)}")
        values = value if op in ("in", "nin") else [value]
        self.spend(path, 1, len(values))
        try:
            node = NearDuplicateOf(near_duplicate_ids(values))
        except FilterError as exc:
            raise _relocated(exc, f"{vpath}: ", path=vpath) from None
        return node if op in ("eq", "in") else Not(node)


def parse_filter(value: str | Mapping[str, Any] | None) -> Filter | None:
    """Parse either syntax: a mapping or text starting with ``{`` is JSON; empty or None is no filter."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return parse_json(value)
    if not isinstance(value, str):
        raise FilterError(f"a filter is JSON or text, got {type(value).__name__}")
    if not value.strip():
        return None
    return parse_json(value) if value.lstrip().startswith("{") else parse_string(value)


def to_json(f: Filter) -> dict[str, Any]:
    """The canonical JSON form of an AST (``parse_json(to_json(f)) == f``)."""
    _check_shape(f)
    return _to_json(f)


def _to_json(f: Filter) -> dict[str, Any]:
    if isinstance(f, Cmp):
        return {"field": f.field, f.op: list(f.value) if isinstance(f.value, tuple) else f.value}
    if isinstance(f, TagIs):
        return {"tag": f.tag} if f.min_score is None else {"tag": f.tag, "min_score": f.min_score}
    if isinstance(f, TextMatch):
        return {"text": f.text}
    if isinstance(f, OcrMatch):
        return {"field": OCR_FIELD, "exists": True} if f.text is None else {"field": OCR_FIELD, "eq": f.text}
    if isinstance(f, NearDuplicateOf):
        ids = list(f.asset_ids)
        return {"field": NEAR_DUPLICATE_OF, **({"eq": ids[0]} if len(ids) == 1 else {"in": ids})}
    if isinstance(f, Not):
        return {"not": _to_json(f.item)}
    return {type(f).__name__.lower(): [_to_json(i) for i in f.items]}
