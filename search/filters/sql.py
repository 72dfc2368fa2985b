"""Filters compiled to parametrised SQL over ``assets a``, and the built-in fields they may name.

Typing happens here, not when parsing: a value is coerced to the field's declared (schema) type,
else a built-in column's type, else what the value looks like. Every term is two-valued (never
NULL), so ``NOT`` is an exact complement: ``ne``/``nin`` and ``-term`` also match assets without
the field. A meta term reads user ``meta`` (which wins, an explicit null included) else the
file's embedded metadata, and matches if any element of a list value matches.

User text never becomes SQL text: values, JSON paths and FTS expressions travel as parameters;
field names pick fixed SQL fragments (``BUILTIN_FIELDS``) or are validated and passed as
JSON-path parameters.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeAlias

from assetlens.search.errors import FilterError
from assetlens.search.filters.ast import (
    MAX_TERMS,
    MAX_VALUES,
    And,
    Cmp,
    Filter,
    NearDuplicateOf,
    Not,
    OcrMatch,
    Or,
    TagIs,
    TextMatch,
    _check_shape,
    _show,
)
from assetlens.search.filters.fields import (
    FieldSchema,
    FieldType,
    check_meta_name,
    coerce_value,
    infer_type,
    meta_path,
    parse_number,
)


@dataclass(frozen=True)
class Builtin:
    """A column (or expression) of ``assets a`` that filters may name."""

    sql: str
    type: FieldType
    help: str
    lower: bool = False  # the column holds lowercase words: compare values lowercased


def _after_last(x: str, chars: str) -> str:
    # rtrim strips every trailing character that is not a separator, leaving the text up to
    # the last separator; what follows is the basename. With no separator the prefix is ''.
    kept = x
    for c in chars:
        kept = f"replace({kept}, '{c}', '')"
    return f"substr({x}, length(rtrim({x}, {kept})) + 1)"


_FILE = _after_last("a.uri", "/\\")
_FOLDER_LEN = f"length(a.uri) - length({_FILE})"
BUILTIN_FIELDS: Mapping[str, Builtin] = {
    "id": Builtin("a.id", "number", "asset id"),
    "uri": Builtin("a.uri", "string", "path or URI of the file"),
    "filename": Builtin(_FILE, "string", "file name: the uri after its last / or \\"),
    "folder": Builtin(f"substr(a.uri, 1, max({_FOLDER_LEN} - 1, 0))", "string", "the uri before its last /"),
    "ext": Builtin(
        f"CASE WHEN instr({_FILE}, '.') > 0 THEN nullif(lower({_after_last(_FILE, '.')}), '') END",
        "string",
        "file extension, lowercase, without the dot",
        lower=True,
    ),
    "kind": Builtin("a.kind", "string", "image, video or audio", lower=True),
    "mime": Builtin("a.mime", "string", "MIME type", lower=True),
    "size": Builtin("a.size", "number", "file size in bytes"),
    "width": Builtin("a.width", "number", "width in pixels (after orientation)"),
    "height": Builtin("a.height", "number", "height in pixels"),
    "aspect": Builtin("CAST(a.width AS REAL) / a.height", "number", "width / height"),
    "orientation": Builtin(
        "CASE WHEN a.width > a.height THEN 'landscape' WHEN a.width < a.height THEN 'portrait' "
        "WHEN a.width = a.height THEN 'square' END",
        "string",
        "landscape, portrait or square",
        lower=True,
    ),
    "duration": Builtin("a.duration", "number", "duration in seconds (video, audio)"),
    "created": Builtin("a.created", "date", "capture time (embedded metadata, else file time)"),
    "modified": Builtin("strftime('%Y-%m-%dT%H:%M:%S', a.mtime, 'unixepoch')", "date", "file mtime"),
    "ingested_at": Builtin("a.ingested_at", "date", "when the asset was last ingested"),
    "ingest_status": Builtin("a.status", "string", "ingest result: ok or failed", lower=True),
    "error": Builtin("a.error", "string", "why the asset failed"),
    "duplicate_of": Builtin("a.duplicate_of", "number", "id of the original of an exact duplicate"),
    "duplicate": Builtin("(a.duplicate_of IS NOT NULL)", "boolean", "is an exact duplicate"),
    "near_duplicate": Builtin(
        "EXISTS (SELECT 1 FROM near_duplicates nd WHERE nd.asset_id = a.id)",
        "boolean",
        "in a near-duplicate group (see near_duplicate_of:ID for one asset's group)",
    ),
    "content_hash": Builtin("a.content_hash", "string", "hash of the file content"),
    "transcribed": Builtin("(a.transcript_model IS NOT NULL)", "boolean", "has a transcript"),
    "has_audio": Builtin(
        "coalesce(a.kind = 'audio' OR (a.kind = 'video' AND json_extract(a.media, '$.has_audio') = 1), 0)",
        "boolean",
        "audio, or video with a sound track",
    ),
}


# --- field checks (shared by both syntaxes) -------------------------------------------------


def _canonical_field(raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise FilterError("empty field name")
    if raw in BUILTIN_FIELDS:
        return raw
    if raw == "tag":
        raise FilterError("'tag' is not a field: use a tag filter (tag:NAME), or meta.tag for a meta field")
    return "meta." + check_meta_name(raw.removeprefix("meta."))


def _check_op(label: str, kind: str | None, op: str) -> None:
    if kind == "boolean" and op not in ("eq", "ne", "in", "nin", "exists"):
        raise FilterError(f"{label} is true or false: compare it with : or != (eq, ne, in, nin, exists)")
    if kind in ("number", "boolean") and op == "prefix":
        raise FilterError(f"{label} is a {kind}: prefix (*) applies to text and dates")


def _check_builtin(field: str, op: str, value: Any) -> None:
    # Built-in types are known before any schema: report bad values where they were written.
    spec = BUILTIN_FIELDS.get(field)
    if spec is None:
        return
    _check_op(field, spec.type, op)
    if op not in ("exists", "prefix"):
        for v in value if op in ("in", "nin") else (value,):
            coerce_value(field, spec.type, v)


NEAR_DUPLICATE_OF = "near_duplicate_of"
"""The filter field of one asset's near-duplicates: a relation to other assets, not a column."""


def near_duplicate_ids(values: Sequence[Any]) -> tuple[int, ...]:
    """Asset ids of a ``near_duplicate_of`` term (whole numbers, as numbers or text).

    Raises:
        FilterError: A value that is not an asset id.
    """
    out = []
    for value in values:
        number = parse_number(value.strip() if isinstance(value, str) else value)
        if not isinstance(number, int) or isinstance(value, bool) or number < 1:
            raise FilterError(f"{NEAR_DUPLICATE_OF} takes asset ids (whole numbers), got {_show(value)}")
        out.append(number)
    return tuple(dict.fromkeys(out))


def _check_text(text: str) -> None:
    if fts_query(text) is None:
        raise FilterError(f"{_show(text)} has no letters or digits to search for")


# --- compilation -----------------------------------------------------------------------------

_SQL_OP = {"eq": "=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_MOMENT = "'%Y-%m-%dT%H:%M:%S'"


def _date_sql(x: str) -> str:
    # Stored dates -> 'YYYY-MM-DDTHH:MM:SS' UTC. strftime reads a bare number (so also '2024') as
    # a Julian day: only ISO-shaped text reaches it, a year or year-month is padded instead.
    return (
        f"CASE WHEN {x} GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*' THEN strftime({_MOMENT}, {x}) "
        f"WHEN {x} GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]' THEN {x} || '-01T00:00:00' "
        f"WHEN {x} GLOB '[0-9][0-9][0-9][0-9]' THEN {x} || '-01-01T00:00:00' END"
    )


_META_BOOL = (
    "CASE j.type WHEN 'true' THEN 1 WHEN 'false' THEN 0 WHEN 'text' THEN CASE lower(trim(j.value)) "
    "WHEN 'true' THEN 1 WHEN 'yes' THEN 1 WHEN 'on' THEN 1 WHEN 'false' THEN 0 WHEN 'no' THEN 0 "
    "WHEN 'off' THEN 0 END END"
)
# Per element of a meta value (json_each yields a scalar itself, or each item of a list):
# the typed SQL value and the guard that keeps e.g. text out of numeric comparisons.
_META_COLUMNS = {
    "string": ("t = 'text'", "v"),
    "number": ("t IN ('integer', 'real')", "v"),
    "date": (None, "d"),
    "boolean": (None, "b"),
}
Typed: TypeAlias = tuple[str, Any, tuple[str, ...]]  # (kind, SQL parameter, texts also equal)


def _join(op: str, parts: list[str]) -> str:
    # Balanced parentheses: SQLite limits expression depth to 1000, a flat chain of a long
    # in-list of dates would reach it.
    if len(parts) == 1:
        return parts[0]
    mid = len(parts) // 2
    return f"({_join(op, parts[:mid])}{op}{_join(op, parts[mid:])})"


def _guarded(guard: str | None, test: str) -> str:
    return f"({test})" if guard is None else f"({guard} AND {test})"


def fts_query(text: str) -> str | None:
    """A safe FTS5 MATCH expression: every word (``\\w+``) double-quoted, words ANDed; None without words."""
    words = re.findall(r"\w+", text)
    return " AND ".join('"' + w.replace('"', '""') + '"' for w in words) if words else None


def compile_filter(
    f: Filter, *, schema: FieldSchema | None = None, now: datetime | None = None
) -> tuple[str, list[Any]]:
    """Compile an AST to an SQL boolean expression over ``assets a`` and its parameters.

    Every term is two-valued (never NULL), so ``NOT`` is an exact complement: ``ne``/``nin``
    and ``-term`` also match assets without the field. A meta term matches if any element of a
    list value matches.

    Args:
        f: The filter.
        schema: Declared meta field types (values are coerced, comparisons use the type).
        now: The moment for ``now``/``today`` values (default: the clock).

    Raises:
        FilterError: Too large, an operator that does not fit the field's type.
        FieldTypeError: A value that does not fit the field's type.
    """
    _check_shape(f)
    compiler = _Compiler(schema or FieldSchema({}), now or datetime.now(UTC))
    sql = compiler.node(f)
    if len(compiler.params) > 4 * MAX_VALUES + 2 * MAX_TERMS:
        raise FilterError(f"filter has more than {MAX_VALUES} values")
    return sql, compiler.params


class _Compiler:
    def __init__(self, schema: FieldSchema, now: datetime) -> None:
        self.schema, self.now = schema, now
        self.params: list[Any] = []

    def bind(self, *values: Any) -> str:
        # Placeholders are emitted left to right in the order their SQL text is built.
        self.params.extend(values)
        return ", ".join("?" * len(values))

    def node(self, f: Filter) -> str:
        if isinstance(f, And | Or):
            return _join(f" {type(f).__name__.upper()} ", [self.node(i) for i in f.items])
        if isinstance(f, Not):
            return f"(NOT {self.node(f.item)})"
        if isinstance(f, TagIs):
            tag = self.bind(f.tag)
            sql = f"EXISTS (SELECT 1 FROM tags t WHERE t.asset_id = a.id AND lower(t.tag) = lower({tag})"
            if f.min_score is not None:
                sql += f" AND t.score >= {self.bind(float(f.min_score))}"
            return sql + ")"
        if isinstance(f, TextMatch):
            query = fts_query(f.text)
            if query is None:
                return "(0)"
            return (
                "(a.id IN (SELECT s.asset_id FROM segments_fts JOIN segments s ON s.id = segments_fts.rowid "
                f"WHERE segments_fts MATCH {self.bind(query)}) "
                f"OR a.id IN (SELECT rowid FROM assets_fts WHERE assets_fts MATCH {self.bind(query)}) "
                f"OR a.id IN (SELECT rowid FROM ocr_fts WHERE ocr_fts MATCH {self.bind(query)}))"
            )
        if isinstance(f, OcrMatch):
            if f.text is None:
                return "(a.id IN (SELECT asset_id FROM ocr_lines))"
            query = fts_query(f.text)
            if query is None:
                return "(0)"
            return f"(a.id IN (SELECT rowid FROM ocr_fts WHERE ocr_fts MATCH {self.bind(query)}))"
        if isinstance(f, NearDuplicateOf):
            ids = self.bind(*f.asset_ids)
            return (
                "(a.id IN (SELECT m.asset_id FROM near_duplicates o JOIN near_duplicates m "
                f"ON m.group_id = o.group_id WHERE o.asset_id IN ({ids}) AND m.asset_id <> o.asset_id))"
            )
        if f.field in BUILTIN_FIELDS:
            return self.builtin(f, BUILTIN_FIELDS[f.field])
        return self.meta(f)

    def typed(self, label: str, declared: str | None, value: Any) -> Typed:
        if declared in ("string", "list"):  # a list field is compared element by element
            return ("string", coerce_value(label, "string", value), ())
        if declared is not None:
            coerced = coerce_value(label, declared, value, self.now)
            return (declared, int(coerced) if declared == "boolean" else coerced, ())
        if isinstance(value, bool):
            return ("boolean", int(value), ())
        kind = infer_type(value) if isinstance(value, str) else "number"
        if kind == "string":
            return ("string", value, ())
        if kind == "number":
            # Undeclared metadata often holds numbers as text: eq also matches their spellings.
            number = parse_number(value)
            texts = {json.dumps(number)} | ({value} if isinstance(value, str) else set())
            if isinstance(number, float) and number.is_integer() and abs(number) < 1e15:
                texts.add(str(int(number)))
            return ("number", number, tuple(sorted(texts)))
        coerced = coerce_value(label, kind, value, self.now)
        return (kind, int(coerced) if kind == "boolean" else coerced, ())

    def values(self, c: Cmp, declared: str | None) -> list[Typed]:
        raw = c.value if c.op in ("in", "nin") else (c.value,)
        spec = BUILTIN_FIELDS.get(c.field)
        if spec is not None and spec.lower:
            raw = tuple(v.lower() if isinstance(v, str) else v for v in raw)
        typed = [self.typed(c.field, declared, v) for v in raw]
        if c.op in ("gt", "gte", "lt", "lte") and typed[0][0] == "boolean":
            raise FilterError(f"{c.field}: true or false can only be compared with : or !=")
        return typed

    def compare(self, column: Callable[[str], tuple[str | None, str]], op: str, values: list[Typed]) -> str:
        parts: list[str] = []
        if op in ("eq", "in"):
            kinds = dict.fromkeys(kind for kind, _, _ in values)
            for kind in kinds:
                guard, x = column(kind)
                params = [p for k, p, _ in values if k == kind]
                if kind == "date":
                    parts.extend(f"({x} >= {self.bind(p)} AND {x} < {self.bind(p + '~')})" for p in params)
                else:
                    test = (
                        f"{x} = {self.bind(params[0])}"
                        if len(params) == 1
                        else f"{x} IN ({self.bind(*params)})"
                    )
                    parts.append(_guarded(guard, test))
            if texts := list(dict.fromkeys(t for _, _, ts in values for t in ts)):
                guard, x = column("string")
                parts.append(_guarded(guard, f"{x} IN ({self.bind(*texts)})"))
            return _join(" OR ", parts)
        kind, param, _ = values[0]
        guard, x = column(kind)
        if kind == "date":
            # The period [P, P~) of a date P: '~' sorts after every character of an ISO string.
            bound = param if op in ("gte", "lt") else param + "~"
            return _guarded(guard, f"{x} {'>=' if op in ('gt', 'gte') else '<'} {self.bind(bound)}")
        return _guarded(guard, f"{x} {_SQL_OP[op]} {self.bind(param)}")

    def builtin(self, c: Cmp, spec: Builtin) -> str:
        _check_op(c.field, spec.type, c.op)
        raw = spec.sql
        if c.op == "exists":
            return f"({raw} IS NOT NULL)"
        if c.op == "prefix":
            value = str(c.value).lower() if spec.lower else str(c.value)
            return f"({raw} IS NOT NULL AND instr({raw}, {self.bind(value)}) = 1)"
        x = _date_sql(raw) if spec.type == "date" else raw
        op = {"ne": "eq", "nin": "in"}.get(c.op, c.op)
        sql = f"({x} IS NOT NULL AND {self.compare(lambda _: (None, x), op, self.values(c, spec.type))})"
        return f"(NOT {sql})" if op != c.op else sql

    def meta(self, c: Cmp) -> str:
        name = check_meta_name(c.field.removeprefix("meta."))
        declared = self.schema.type_of(name)
        _check_op(c.field, declared, c.op)
        path = meta_path(name)
        # User meta wins over the file's embedded metadata (an explicit null hides it too).
        source = f"json_each(coalesce(a.meta -> {self.bind(path)}, a.embedded -> {self.bind(path)}))"
        kinds: set[str] = set()
        op = {"ne": "eq", "nin": "in"}.get(c.op, c.op)
        if op == "exists":
            test = "t <> 'null'"
        elif op == "prefix":
            test = f"t = 'text' AND instr(v, {self.bind(coerce_value(c.field, 'string', c.value))}) = 1"
        else:
            typed = self.values(c, declared)
            kinds = {kind for kind, _, _ in typed}
            test = self.compare(lambda kind: _META_COLUMNS[kind], op, typed)
        columns = "j.value AS v, j.type AS t"
        if "date" in kinds:
            columns += f", CASE WHEN j.type = 'text' THEN {_date_sql('j.value')} END AS d"
        if "boolean" in kinds:
            columns += f", {_META_BOOL} AS b"
        sql = f"EXISTS (SELECT 1 FROM (SELECT {columns} FROM {source} j) WHERE {test})"
        return f"(NOT {sql})" if op != c.op else f"({sql})"
