"""DAM metadata: the field schema, setting and bulk-importing ``meta`` fields, and facet counts.

Values pass through :meth:`FieldSchema.coerce`: a declared field must fit its type (else
:class:`FieldTypeError`, naming field, type and value); an undeclared one takes the type its
text looks like (``"12"`` -> 12, ``"true"`` -> true, anything else stays text). Dotted names nest
(``camera.make=Nikon`` sets ``{"camera": {"make": "Nikon"}}``), as in the filter language.

Imports (:func:`import_meta`) read CSV or JSON Lines, one transaction for the whole file:

* CSV: a header row; a ``uri`` column (the asset's uri exactly as stored), a ``path`` column (a
  file path; a relative one is taken relative to the CSV's folder, like the links of a manifest
  kept beside the files) and/or a ``content_hash`` column say which asset a row is for: the
  uri/path first, the hash when the uri/path is missing or unknown (files moved to another
  library). A hash held by several assets (exact duplicates) updates all of them. If any column
  is named ``meta.NAME`` only those columns are fields (so an ``assetlens export`` file imports
  back, its other columns ignored); otherwise every other column is a field. Empty cells are
  ignored (they never clear a field). A cell holding a JSON array or object (``["a", "b"]``) is
  read as JSON, so exported lists come back as lists. The delimiter (``,`` ``;`` or tab) is
  read from the header line.
* JSON Lines: ``{"uri": ..., "meta": {...}}`` (only ``meta`` is read: export files import back)
  or flat objects whose other keys are fields. JSON values keep their JSON type unless the field
  is declared (``"00123"`` stays text); ``null`` is stored as null (it hides the file's own value
  of the field, as in filters); nested objects merge field by field. Imports never remove a
  field: use ``meta set ID NAME=`` for that.

Rows that match no asset are reported (not an error); rows with an invalid value are reported
with their line number and skipped whole; everything else is applied.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from assetlens.search.catalog.meta_import import (
    Columns,
    Format,
    ImportReport,
    MetaImportError,
    Row,
    Tally,
    detect_format,
    read_rows,
)
from assetlens.search.errors import FieldTypeError, FilterError
from assetlens.search.filters import BUILTIN_FIELDS, Filter, compile_filter, parse_filter
from assetlens.search.filters.fields import FieldSchema, check_meta_name, meta_path
from assetlens.search.store import Store

__all__ = ["ImportReport", "MetaImportError", "detect_format"]  # re-exported: callers need only this module

SCHEMA_KEY = "meta_schema"
MAX_CONFLICTS = 1000  # stored values listed by declare_fields (all are counted)
BUCKETS = {"year": 4, "month": 7, "day": 10}


# --- schema ----------------------------------------------------------------------------------


def load_schema(store: Store) -> FieldSchema:
    """The library's declared meta field types (empty when none were declared)."""
    text = store.get_state(SCHEMA_KEY)
    return FieldSchema.from_dict(json.loads(text)) if text else FieldSchema({})


def save_schema(store: Store, schema: FieldSchema) -> None:
    """Persist the field schema in the store (replaces the previous one)."""
    store.set_state(SCHEMA_KEY, json.dumps(schema.as_dict(), sort_keys=True))


@dataclass(frozen=True)
class SchemaUpdate:
    """The result of :func:`declare_fields`.

    Attributes:
        schema: The schema now in force.
        conflicts: Stored values that do not fit a newly declared type, as
            ``(asset_id, field, value)`` (the first 1000); they are kept as they
            are, but typed filters skip them.
        conflict_count: How many such values there are in all.
    """

    schema: FieldSchema
    conflicts: list[tuple[int, str, Any]] = field(default_factory=list)
    conflict_count: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema.as_dict(),
            "conflicts": [{"asset_id": a, "field": f, "value": v} for a, f, v in self.conflicts],
            "conflict_count": self.conflict_count,
        }


def declare_fields(store: Store, declarations: Mapping[str, str]) -> SchemaUpdate:
    """Declare (``{"rating": "number"}``) or undeclare (``{"rating": ""}``) meta field types.

    Existing values are not rewritten: the ones that do not fit a new type are reported.

    Raises:
        FieldTypeError: An unknown type. FilterError: An invalid field name.
    """
    types: dict[str, str] = dict(load_schema(store).types)
    for name, kind in declarations.items():
        bare = check_meta_name(name.removeprefix("meta."))
        if kind.strip():
            types[bare] = kind.strip().lower()
        else:
            types.pop(bare, None)
    schema = FieldSchema.from_dict(types)
    changed = {check_meta_name(n.removeprefix("meta.")) for n, k in declarations.items() if k.strip()}
    conflicts: list[tuple[int, str, Any]] = []
    count = 0
    for asset_id, meta in store.iter_json_column("meta") if changed else ():
        for name in sorted(changed):
            value = _get(meta, name)
            if value is _MISSING or value is None:
                continue
            try:
                schema.coerce(name, value)
            except FieldTypeError:
                count += 1
                if len(conflicts) < MAX_CONFLICTS:
                    conflicts.append((asset_id, f"meta.{name}", value))
    save_schema(store, schema)
    return SchemaUpdate(schema, conflicts, count)


# --- setting values --------------------------------------------------------------------------

_MISSING: Any = object()


def _get(meta: Mapping[str, Any], name: str) -> Any:
    value: Any = meta
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _put(meta: dict[str, Any], name: str, value: Any) -> None:
    parts = name.split(".")
    node = meta
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            held = ".".join(parts[: depth + 1])
            raise FieldTypeError(
                f"meta.{name}",
                "string",
                value,
                message=f"meta.{held} holds {child!r}, not fields: remove it first ({held}=)",
            )
        node = child
    node[parts[-1]] = value


def _drop(meta: dict[str, Any], name: str) -> None:
    parts = name.split(".")
    trail = [meta]
    for part in parts[:-1]:
        child = trail[-1].get(part)
        if not isinstance(child, dict):
            return
        trail.append(child)
    trail[-1].pop(parts[-1], None)
    # Removing the last field of a nested object removes the object too.
    for depth in range(len(parts) - 1, 0, -1):
        if not trail[depth]:
            trail[depth - 1].pop(parts[depth - 1], None)


def _coerced(assignments: Mapping[str, Any], schema: FieldSchema, infer: bool) -> dict[str, Any]:
    """``{bare name: value}``, values validated; ``_MISSING`` marks a removal."""
    out: dict[str, Any] = {}
    for raw, value in assignments.items():
        name = check_meta_name(raw.removeprefix("meta.") if isinstance(raw, str) else raw)
        if infer and (value is None or (isinstance(value, str) and not value.strip())):
            out[name] = _MISSING
        elif value is None:
            out[name] = None  # a JSON null is kept: it hides the file's own value, as in filters
        elif isinstance(value, Mapping):
            # Objects merge field by field, so nested declared fields are typed too.
            out.update(_coerced({f"{name}.{k}": v for k, v in value.items()}, schema, infer))
        elif not infer and isinstance(value, str) and schema.type_of(name) is None:
            out[name] = value  # JSON text stays text: "00123" is not the number 123
        else:
            out[name] = schema.coerce(name, value)
    return out


def _apply(meta: dict[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    updated = json.loads(json.dumps(meta))
    for name, value in values.items():
        if value is _MISSING:
            _drop(updated, name)
        else:
            _put(updated, name, value)
    return updated


def set_meta(
    store: Store,
    asset_id: int,
    assignments: Mapping[str, Any],
    schema: FieldSchema | None = None,
    *,
    infer: bool = True,
) -> dict[str, Any]:
    """Set (or remove) meta fields of one asset, atomically.

    Args:
        store: The library's store.
        asset_id: The asset.
        assignments: Field name (``meta.`` optional, dots nest) to value. Text is coerced to the
            declared type; an empty text or None removes the field (see ``infer``).
        schema: Declared types (default: the library's).
        infer: A text source (the CLI, CSV): undeclared text that looks like a number or a
            boolean is read as one, and empty text or None removes the field. False for JSON
            sources: values keep their JSON type, "" and null are stored as they are.

    Returns:
        The asset's new ``meta``.

    Raises:
        AssetNotFoundError: No such asset. FieldTypeError: A value that does not fit its type
        (nothing is written). FilterError: An invalid field name.
    """
    values = _coerced(assignments, schema or load_schema(store), infer)
    with store.transaction():
        meta = _apply(store.meta_of(asset_id), values)
        store.set_meta(asset_id, meta)
    return meta


# --- import ----------------------------------------------------------------------------------


class _DryRun(Exception):
    pass


def import_meta(
    store: Store,
    path: Path,
    schema: FieldSchema | None = None,
    *,
    fmt: Format | None = None,
    dry_run: bool = False,
    strict: bool = False,
) -> ImportReport:
    """Import meta fields from a CSV or JSON Lines file (see the module docstring).

    The file is streamed; all changes are written in one transaction (none with ``dry_run``).

    Args:
        store: The library's store.
        path: The file.
        schema: Declared types (default: the library's).
        fmt: ``csv`` or ``jsonl`` (default: by extension, else by content).
        dry_run: Check and count everything, write nothing.
        strict: Write nothing if any row is invalid (unmatched rows are not invalid).

    Raises:
        MetaImportError: The file cannot be read as a whole (missing, no key column, bad header,
            not UTF-8). Problems of single rows are reported instead.
    """
    path = Path(path)
    if not path.is_file():
        raise MetaImportError(f"no such file: {path}")
    schema = schema or load_schema(store)
    kind = fmt or detect_format(path)
    tally, columns = Tally(), Columns()
    written = True
    try:
        with store.transaction(), path.open("r", encoding="utf-8-sig", newline="") as f:
            for row in read_rows(f, path, kind, columns):
                _import_row(store, row, path.parent, schema, tally)
            if dry_run or (strict and tally.error_count):
                raise _DryRun  # rolls the transaction back
    except _DryRun:
        written = False
    except UnicodeDecodeError as exc:
        raise MetaImportError(f"{path} is not UTF-8 text ({exc.reason}): save it as UTF-8") from exc
    return ImportReport(
        kind, tally.rows, tally.matched, len(tally.updated), tally.unmatched, tally.errors,
        tally.unmatched_count, tally.error_count, list(columns.fields), list(columns.ignored),
        dry_run, written,
    )  # fmt: skip


def _import_row(store: Store, row: Row, base: Path, schema: FieldSchema, tally: Tally) -> None:
    tally.rows += 1
    if row.error is not None:
        tally.error(row.line, row.error)
        return
    try:
        values = _coerced(row.values, schema, row.infer)
    except FilterError as exc:
        tally.error(row.line, str(exc))
        return
    ids = _match(store, row.keys, base)
    if not ids:
        if row.keys:
            tally.miss(row.line, " / ".join(f"{k}={v}" for k, v in row.keys.items()))
        else:
            tally.error(row.line, "no uri, path or content_hash: the row names no asset")
        return
    tally.matched += 1
    changes = []
    for asset_id in ids:
        meta = store.meta_of(asset_id)
        try:
            new = _apply(meta, values)
        except FieldTypeError as exc:  # e.g. a.b=1 where a holds text: the row is skipped whole
            tally.error(row.line, str(exc))
            return
        if new != meta:
            changes.append((asset_id, new))
    for asset_id, new in changes:
        store.set_meta(asset_id, new)
        tally.updated.add(asset_id)


def _match(store: Store, keys: Mapping[str, str], base: Path) -> list[int]:
    for column in ("uri", "path"):
        ref = keys.get(column)
        if not ref:
            continue
        if column == "path":
            ref = os.path.abspath(base / os.path.expanduser(ref))
        found = store.asset_by_uri(ref)
        if found is not None:
            return [found.id]
    digest = keys.get("content_hash")
    return store.asset_ids_by_hash(digest) if digest else []


# --- facets ----------------------------------------------------------------------------------


def filter_sql(
    store: Store,
    filter: Filter | str | Mapping[str, Any] | None,
    schema: FieldSchema | None = None,
    now: datetime | None = None,
) -> tuple[str, list[Any]]:
    """A filter (an AST, the string or the JSON syntax, or None) as SQL over ``assets a``.

    Raises:
        FilterError: The filter cannot be parsed or compiled.
    """
    parsed = parse_filter(filter) if filter is None or isinstance(filter, str | Mapping) else filter
    if parsed is None:
        return "1", []
    return compile_filter(parsed, schema=schema or load_schema(store), now=now)


_JSON_TYPES: dict[str, Any] = {"true": lambda _: True, "false": lambda _: False, "integer": int}


def facets(
    store: Store,
    field: str,
    filter: Filter | str | Mapping[str, Any] | None = None,
    limit: int = 50,
    schema: FieldSchema | None = None,
    *,
    by: Literal["year", "month", "day"] | None = None,
    now: datetime | None = None,
) -> list[tuple[Any, int]]:
    """Asset counts per value of a field, most frequent first (ties by value).

    Args:
        store: The library's store.
        field: A built-in field (``kind``, ``mime``, ``ingest_status``, ``width``, ``created``...),
            ``tag`` (every tag, any source), or a metadata field (``region`` or ``meta.region``):
            user ``meta`` wins over the file's ``embedded`` metadata, a list counts each element.
        filter: Only assets passing this filter (an AST, the string or the JSON syntax).
        limit: Most values returned.
        schema: Declared types for the filter (default: the library's).
        by: Count dates by ``year``, ``month`` or ``day`` (their ISO prefix).
        now: The moment for ``now``/``today`` in the filter.

    Raises:
        FilterError: An invalid field name or filter, or ``by`` on a field that is not a date.
    """
    if limit < 1:
        raise FilterError(f"limit must be at least 1, got {limit}")
    where, params = filter_sql(store, filter, schema, now)
    prefix = None if by is None else BUCKETS[by]
    name = field.strip()
    if name in ("tag", "tags"):
        if by is not None:
            raise FilterError("tags are not dates: --by applies to date fields")
        return list(store.facet_tags(where, params, limit))
    spec = BUILTIN_FIELDS.get(name)
    if spec is not None:
        if by is not None and spec.type != "date":
            raise FilterError(f"{name} is a {spec.type}, not a date: --by applies to date fields")
        values = store.facet_values(spec.sql, where, params, limit, prefix)
        return [(bool(v) if spec.type == "boolean" else v, n) for v, n in values]
    path = meta_path(name.removeprefix("meta."))
    rows = store.facet_json(path, where, params, limit, prefix)
    return [(_JSON_TYPES.get(t, lambda v: v)(v), n) for t, v, n in rows]
