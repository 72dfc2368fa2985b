"""Readers of metadata import files (CSV, JSON Lines) and the import report.

No store here: :func:`search.catalog.meta.import_meta` matches the rows to assets and writes them. The
file formats are described in :mod:`search.catalog.meta`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from assetlens.search.catalog.csv_cells import read_cell
from assetlens.search.errors import FilterError, SearchError
from assetlens.search.filters.fields import check_meta_name

KEY_COLUMNS = ("uri", "path", "content_hash")
MAX_REPORTED = 1000  # unmatched rows and errors listed in a report (all are counted)
Format = Literal["csv", "jsonl"]


class MetaImportError(SearchError):
    """A metadata file that cannot be imported at all (no key column, bad header, not UTF-8)."""


@dataclass(frozen=True)
class Row:
    """One data row of an import file.

    Attributes:
        line: 1-based line where the row starts.
        keys: Non-empty ``uri`` / ``path`` / ``content_hash`` values.
        values: Field name (as written) to value; empty CSV cells left out.
        infer: Values are text to be read by type (CSV), not typed JSON.
        error: Why the row cannot be read (then ``values`` is empty).
    """

    line: int
    keys: dict[str, str]
    values: dict[str, Any]
    infer: bool
    error: str | None = None


@dataclass
class Columns:
    """What a reader learnt of the file's columns (insertion-ordered sets)."""

    fields: dict[str, None] = field(default_factory=dict)
    ignored: dict[str, None] = field(default_factory=dict)


@dataclass(frozen=True)
class ImportReport:
    """What :func:`search.catalog.meta.import_meta` did.

    Attributes:
        format: ``csv`` or ``jsonl``.
        rows: Data rows read (blank lines not counted).
        matched: Rows that matched at least one asset.
        updated: Assets whose meta changed.
        unmatched: ``(line, key)`` of rows that matched no asset (first :data:`MAX_REPORTED`).
        errors: ``(line, message)`` of rows skipped whole (first :data:`MAX_REPORTED`).
        unmatched_count: All unmatched rows. error_count: All skipped rows.
        fields: Field names the file sets. ignored: Columns or keys that were not read.
        dry_run: A dry run. written: The changes were committed (not for a dry run, nor for a
            strict import with invalid rows).
    """

    format: str
    rows: int = 0
    matched: int = 0
    updated: int = 0
    unmatched: list[tuple[int, str]] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)
    unmatched_count: int = 0
    error_count: int = 0
    fields: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    dry_run: bool = False
    written: bool = True

    def as_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["unmatched"] = [{"line": n, "key": k} for n, k in self.unmatched]
        doc["errors"] = [{"line": n, "message": m} for n, m in self.errors]
        return doc


class Tally:
    """Counts and the first :data:`MAX_REPORTED` problems of an import in progress."""

    def __init__(self) -> None:
        self.rows = self.matched = self.unmatched_count = self.error_count = 0
        self.unmatched: list[tuple[int, str]] = []
        self.errors: list[tuple[int, str]] = []
        self.updated: set[int] = set()

    def error(self, line: int, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED:
            self.errors.append((line, message))

    def miss(self, line: int, key: str) -> None:
        self.unmatched_count += 1
        if len(self.unmatched) < MAX_REPORTED:
            self.unmatched.append((line, key))


def detect_format(path: Path) -> Format:
    """``jsonl`` for .jsonl/.ndjson/.json files or content starting with ``{``, else ``csv``."""
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    with path.open("r", encoding="utf-8-sig", errors="replace") as f:
        head = f.read(4096).lstrip()
    return "jsonl" if head.startswith("{") else "csv"


def read_rows(f: IO[str], path: Path, fmt: Format, columns: Columns) -> Iterator[Row]:
    """Stream the rows of an open import file (text mode, ``newline=""``).

    Raises:
        MetaImportError: The CSV header has no key column, a repeated or an invalid column name.
    """
    return csv_rows(f, path, columns) if fmt == "csv" else jsonl_rows(f, columns)


def csv_rows(f: IO[str], path: Path, columns: Columns) -> Iterator[Row]:
    """Rows of a CSV file with a header row (delimiter ``,``, ``;`` or tab, read from the header)."""
    header_line = f.readline()
    if not header_line.strip():
        raise MetaImportError(f"{path} is empty: a CSV import needs a header row")
    # The delimiter used most in the header: Excel writes ';' where ',' is the decimal mark.
    delimiter = max(",;\t", key=header_line.count)
    names = [h.strip() for h in next(csv.reader([header_line], delimiter=delimiter))]
    lowered = [n.lower() for n in names]
    if not any(n in KEY_COLUMNS for n in lowered):
        raise MetaImportError(
            f"{path}: no uri, path or content_hash column (header: {', '.join(names)}): "
            f"one of them says which asset a row is for"
        )
    if len(set(lowered)) != len(lowered):
        raise MetaImportError(f"{path}: a column name appears twice in the header")
    prefixed = any(n.startswith("meta.") for n in names)
    wanted: list[tuple[int, str]] = []
    for i, name in enumerate(names):
        if lowered[i] in KEY_COLUMNS:
            continue
        if prefixed and not name.startswith("meta."):
            columns.ignored[name] = None
            continue
        try:
            wanted.append((i, check_meta_name(name.removeprefix("meta."))))
        except FilterError as exc:
            raise MetaImportError(f"{path}: column {name!r}: {exc}") from exc
    columns.fields.update(dict.fromkeys(n for _, n in wanted))
    keys = [(i, lowered[i]) for i in range(len(names)) if lowered[i] in KEY_COLUMNS]
    # Exported transcripts can be long: allow big cells (the default limit is 128 KiB).
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))
    reader = csv.reader(f, delimiter=delimiter)
    end = 1  # the header's line; a record may span lines (quoted newlines)
    for cells in reader:
        line, end = end + 1, reader.line_num + 1
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(names):
            yield Row(line, {}, {}, True, f"{len(cells)} cells but {len(names)} columns in the header")
            continue
        cells += [""] * (len(names) - len(cells))
        values = {name: read_cell(cells[i]) for i, name in wanted if cells[i].strip()}
        yield Row(line, {k: cells[i].strip() for i, k in keys if cells[i].strip()}, values, True)


def jsonl_rows(f: IO[str], columns: Columns) -> Iterator[Row]:
    """Rows of a JSON Lines file: ``{"uri": ..., "meta": {...}}`` or flat objects."""
    for line, text in enumerate(f, 1):
        if not text.strip():
            continue
        try:
            doc = json.loads(text)
        except ValueError as exc:
            yield Row(line, {}, {}, False, f"not JSON: {exc}")
            continue
        if not isinstance(doc, dict):
            yield Row(line, {}, {}, False, "not a JSON object")
            continue
        keys = {k: str(doc[k]).strip() for k in KEY_COLUMNS if isinstance(doc.get(k), str | int)}
        if isinstance(doc.get("meta"), dict):
            values = doc["meta"]
            columns.ignored.update(dict.fromkeys(k for k in doc if k not in (*KEY_COLUMNS, "meta")))
        else:
            values = {k: v for k, v in doc.items() if k not in KEY_COLUMNS}
        columns.fields.update(dict.fromkeys(values))
        yield Row(line, {k: v for k, v in keys.items() if v}, values, False)
