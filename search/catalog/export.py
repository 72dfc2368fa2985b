"""Export assets as CSV, JSON Lines or XMP sidecars.

CSV and JSON Lines carry, per asset: id, uri, kind, mime, size, width, height, duration, created,
content_hash, ingest_status (ok or failed) and error, the user ``meta``, the tags (source and
score), the metadata read from the file (``embedded``), the transcript text and the text read in
its pictures (OCR). Both import back
with ``assetlens meta import`` (only the meta fields are read), which restores the meta fields.

CSV flattens: ``meta.NAME`` and ``embedded.NAME`` columns (dots for nested objects), ``tags`` as
``tag1; tag2`` (best first, each tag once), ``tag_scores`` as ``tag1=0.9021; tag2=0.3000``, the
transcript as one ``transcript`` column, the OCR lines as one ``ocr_text`` column (``line 1 |
line 2``; JSON Lines has them in ``ocr`` with box, confidence and time). A meta list is written
``a, b`` when its field is declared ``list`` (and no element holds a comma), else as a JSON
array, which the import reads back as a list. CSV cannot tell text from numbers: declare a field
``string`` (``assetlens meta schema set sku=string``) to keep ``00123`` as text through a CSV
round trip; JSON Lines keeps every JSON type, nulls included. Cells are written by
:mod:`search.catalog.csv_cells`: one that a spreadsheet would run as a formula gets a leading
``'`` (CSV injection), which the import removes.

XMP sidecars (see :mod:`search.catalog.xmp` for the packet: keywords in ``dc:subject``; title,
description, creator, rights and usage terms from ``meta``, else from the file's own metadata;
tag scores, DAM fields and the OCR lines in the ``assetlens`` namespace) are named ``NAME.EXT.xmp``
by default: the convention of darktable, digiKam and exiftool's ``%f.%e.xmp``, which never mixes up
``photo.jpg`` and ``photo.cr2``. ``naming="base"`` writes ``NAME.xmp``, which Lightroom Classic,
Adobe Bridge, Capture One and Premiere read; two assets that would share a ``NAME.xmp`` are
reported and the second is skipped. Sidecars go next to each file (not for files that are gone),
or below ``sidecar_dir`` mirroring the assets' folders under their common parent folder.

An existing sidecar is merged, never replaced: its other properties stay, the properties
AssetLens writes are replaced, and ``dc:subject`` keeps the keywords that AssetLens did not add
itself (it records those it added). A sidecar without any AssetLens property (written by another
program) is left alone and reported unless ``overwrite`` is given, which merges into it (an
unreadable one is then replaced). Sidecars are written to a temporary file and renamed.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

from assetlens.search.catalog.csv_cells import cell_text, guard_formula
from assetlens.search.catalog.meta import filter_sql, load_schema
from assetlens.search.catalog.xmp import XmpContent, XmpError, merge_packet, new_packet
from assetlens.search.errors import SearchError
from assetlens.search.filters import Filter
from assetlens.search.filters.fields import FieldSchema, flatten_fields
from assetlens.search.store import Asset, Store, Tag, TextLine, now_iso

FORMATS = ("csv", "jsonl", "xmp")
Naming = Literal["ext", "base"]
COLUMNS = ("id", "uri", "kind", "mime", "size", "width", "height", "duration", "created", "content_hash",
           "ingest_status", "error", "tags", "tag_scores", "transcript", "ocr_text")  # fmt: skip
MAX_REPORTED = 1000


class ExportError(SearchError):
    """An export that cannot be written (the output file or folder is not writable)."""


@dataclass(frozen=True)
class ExportReport:
    """What an export did.

    Attributes:
        format: ``csv``, ``jsonl`` or ``xmp``.
        assets: Assets written (rows, lines, or sidecars).
        output: The file (``-`` for stdout), the sidecar folder, or None (sidecars beside files).
        merged: Sidecars merged into an existing file.
        skipped: ``(uri, reason)`` of assets not exported (first :data:`MAX_REPORTED`).
        skipped_count: All assets skipped.
    """

    format: str
    assets: int
    output: str | None
    merged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    skipped_count: int = 0

    def as_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["skipped"] = [{"uri": u, "reason": r} for u, r in self.skipped]
        return doc


def tag_doc(t: Tag) -> dict[str, Any]:
    """A tag as exported: ``{"tag", "score", "source", "t"}``."""
    return {"tag": t.tag, "score": round(t.score, 4), "source": t.source, "t": t.t}


def asset_doc(
    asset: Asset, tags: list[Tag], segments: list[dict[str, Any]], lines: list[TextLine]
) -> dict[str, Any]:
    """The exported form of one asset (a JSON Lines line)."""
    text = " ".join(s["text"].strip() for s in segments if s["text"].strip())
    return {
        "id": asset.id, "uri": asset.uri, "kind": asset.kind, "mime": asset.mime, "size": asset.size,
        "width": asset.width, "height": asset.height, "duration": asset.duration, "created": asset.created,
        "content_hash": asset.content_hash, "ingest_status": asset.status, "error": asset.error,
        "meta": asset.meta,
        "tags": [tag_doc(t) for t in tags], "embedded": asset.embedded,
        "transcript": text if asset.transcript_model is not None else None,
        "transcript_language": next((s["language"] for s in segments if s.get("language")), None),
        "ocr": [line.as_dict() for line in lines],
    }  # fmt: skip


def iter_docs(
    store: Store,
    filter: Filter | str | Mapping[str, Any] | None = None,
    *,
    schema: FieldSchema | None = None,
    now: datetime | None = None,
) -> Iterator[dict[str, Any]]:
    """Exported documents of the assets passing ``filter``, in id order, streamed in batches."""
    where, params = filter_sql(store, filter, schema, now)
    for batch in store.iter_assets(where, params):
        ids = [a.id for a in batch]
        tags, segments, read = store.tags_of(ids), store.segments_by_asset(ids), store.ocr.lines_by_asset(ids)
        for asset in batch:
            yield asset_doc(asset, tags[asset.id], segments.get(asset.id, []), read.get(asset.id, []))


def export_jsonl(store: Store, out: IO[str], filter: Filter | str | Mapping[str, Any] | None = None) -> int:
    """Write one JSON document per asset and line; returns the number of assets."""
    count = 0
    for doc in iter_docs(store, filter):
        out.write(json.dumps(doc, ensure_ascii=False, default=str) + "\n")
        count += 1
    return count


def export_csv(store: Store, out: IO[str], filter: Filter | str | Mapping[str, Any] | None = None) -> int:
    """Write a CSV file (header + one row per asset, see the module docstring); returns the row count."""
    schema, now = load_schema(store), datetime.now(UTC)  # one moment for both passes' relative dates
    where, params = filter_sql(store, filter, schema, now)
    # A first, light pass over the JSON columns finds every meta and embedded field for the header.
    meta_names: dict[str, None] = {}
    embedded_names: dict[str, None] = {}
    for names, column in ((meta_names, "meta"), (embedded_names, "embedded")):
        for _, value in store.iter_json_column(column, where, params):
            names.update(dict.fromkeys(flatten_fields(value)))
    header = [
        *COLUMNS,
        *(f"embedded.{n}" for n in sorted(embedded_names)),
        *(f"meta.{n}" for n in sorted(meta_names)),
    ]
    writer = csv.writer(out)
    writer.writerow(header)
    count = 0
    for doc in iter_docs(store, filter, schema=schema, now=now):
        best: dict[str, float] = {}
        for t in doc["tags"]:
            best[t["tag"]] = max(best.get(t["tag"], t["score"]), t["score"])
        row: dict[str, Any] = {k: doc[k] for k in COLUMNS if k in doc}
        row["tags"] = "; ".join(best)
        row["tag_scores"] = "; ".join(f"{k}={v:.4f}" for k, v in best.items())
        row["ocr_text"] = " | ".join(line["text"] for line in doc["ocr"])
        row |= {f"embedded.{k}": cell_text(v, "; ") for k, v in flatten_fields(doc["embedded"]).items()}
        for name, value in flatten_fields(doc["meta"]).items():
            # A declared list reads back from "a, b"; anything else that is a list stays JSON.
            plain = isinstance(value, list) and not any("," in str(v) for v in value)
            joined = plain and schema.type_of(name) == "list"
            row[f"meta.{name}"] = ", ".join(map(str, value)) if joined else cell_text(value)
        writer.writerow([guard_formula(cell_text(row.get(k))) for k in header])
        count += 1
    return count


def export_file(
    store: Store,
    fmt: Literal["csv", "jsonl"],
    path: Path,
    filter: Filter | str | Mapping[str, Any] | None = None,
) -> ExportReport:
    """Write a CSV or JSON Lines export to ``path``.

    Written through a temporary file renamed at the end: a failed export leaves no half file and
    an earlier export at ``path`` stays whole.

    Raises:
        ExportError: The file cannot be written (full disk, no permission...).
    """
    write = export_csv if fmt == "csv" else export_jsonl
    temporary = path.with_name(f".{path.name}.assetlens-tmp")
    try:
        with temporary.open("w", encoding="utf-8", newline="") as f:
            count = write(store, f, filter)
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from exc
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return ExportReport(fmt, count, str(path))


def sidecar_path(
    uri: str, naming: Naming = "ext", sidecar_dir: Path | None = None, root: str | None = None
) -> Path:
    """Where the sidecar of the file ``uri`` goes (see the module docstring)."""
    source = Path(uri)
    name = f"{source.name}.xmp" if naming == "ext" else f"{source.stem}.xmp"
    if sidecar_dir is None:
        return source.with_name(name)
    folder = os.path.dirname(os.path.abspath(uri))
    relative = os.path.relpath(folder, root) if root else ""
    return Path(sidecar_dir) / relative / name


def export_xmp(
    store: Store,
    filter: Filter | str | Mapping[str, Any] | None = None,
    *,
    sidecar_dir: Path | None = None,
    naming: Naming = "ext",
    overwrite: bool = False,
    min_score: float = 0.0,
) -> ExportReport:
    """Write (or merge) an XMP sidecar per asset passing ``filter``.

    Args:
        store: The library's store.
        filter: Only these assets.
        sidecar_dir: Write below this folder (mirroring the assets' folders) instead of beside files.
        naming: ``ext`` for ``NAME.EXT.xmp``, ``base`` for ``NAME.xmp``.
        overwrite: Also merge into sidecars that another program wrote.
        min_score: Model (``clip``) tags scoring less are not written as keywords.
    """
    schema, now = load_schema(store), datetime.now(UTC)
    root = None
    if sidecar_dir is not None:
        uris = dict(store.uris())
        where, params = filter_sql(store, filter, schema, now)
        folders = {
            os.path.dirname(os.path.abspath(uris[int(i)])) for i in store.matching_asset_ids(where, params)
        }
        root = os.path.commonpath(sorted(folders)) if folders else None
    written: dict[Path, str] = {}
    skipped: list[tuple[str, str]] = []
    count = merged = skipped_count = 0
    for doc in iter_docs(store, filter, schema=schema, now=now):
        target = sidecar_path(doc["uri"], naming, sidecar_dir, root)
        reason = _write_sidecar(target, doc, written, overwrite, min_score, sidecar_dir is None)
        if reason in (None, "merged"):
            count += 1
            merged += reason == "merged"
            written[target] = doc["uri"]
        else:
            skipped_count += 1
            if len(skipped) < MAX_REPORTED:
                skipped.append((doc["uri"], reason))
    output = None if sidecar_dir is None else str(sidecar_dir)
    return ExportReport("xmp", count, output, merged, skipped, skipped_count)


def _write_sidecar(
    target: Path,
    doc: dict[str, Any],
    written: dict[Path, str],
    overwrite: bool,
    min_score: float,
    beside: bool,
) -> str | None:
    """Write one sidecar; returns None (new), "merged", or why it was skipped."""
    if target in written:
        return f"{target} is also the sidecar of {written[target]}: use naming 'ext' (NAME.EXT.xmp)"
    if beside and not Path(doc["uri"]).exists():
        return "the file is gone: no sidecar beside it"
    content = xmp_content(doc, min_score)
    try:
        if target.exists():
            text = merge_packet(target.read_bytes(), content, overwrite=overwrite)
            if text is None:
                return f"{target} was written by another program: use --overwrite to merge into it"
            state: str | None = "merged"
        else:
            text, state = new_packet(content), None
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: a crash never leaves a half-written sidecar behind.
        temporary = target.with_name(f".{target.name}.assetlens-tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, target)
    except XmpError as exc:
        return f"{target}: {exc}"
    except OSError as exc:
        return f"cannot write {target}: {exc.strerror or exc}"
    return state


def _first_text(*values: Any) -> str | None:
    for value in values:
        if isinstance(value, list):
            value = "; ".join(str(v) for v in value if v not in (None, ""))
        if value not in (None, "") and not isinstance(value, dict):
            return str(value)
    return None


def _words(value: Any) -> list[str]:
    if isinstance(value, str):
        return [w.strip() for w in value.split(",")]
    return [str(v) for v in value if not isinstance(v, dict | list)] if isinstance(value, list) else []


def xmp_content(doc: dict[str, Any], min_score: float = 0.0, exported: str | None = None) -> XmpContent:
    """What the sidecar of an exported asset holds: user ``meta`` first, the file's metadata second.

    Keywords are the tags (model tags scoring at least ``min_score``; user and import tags always),
    then ``meta.keywords``, then the file's own keywords.
    """
    meta, embedded = doc["meta"], doc["embedded"]
    tags = [t for t in doc["tags"] if t["source"] != "clip" or t["score"] >= min_score]
    creators = meta.get("creator") or embedded.get("creator")
    keywords = [t["tag"] for t in tags] + _words(meta.get("keywords")) + _words(embedded.get("keywords"))
    return XmpContent(
        asset_id=doc["id"], uri=doc["uri"], content_hash=doc["content_hash"], exported=exported or now_iso(),
        keywords=tuple(keywords),
        title=_first_text(meta.get("title"), embedded.get("title")),
        description=_first_text(meta.get("description"), meta.get("caption"), embedded.get("description")),
        creators=tuple(_words(creators) if isinstance(creators, list) else [creators] if creators else []),
        rights=_first_text(meta.get("rights"), meta.get("copyright"), embedded.get("copyright")),
        usage_terms=_first_text(meta.get("usage_terms"), embedded.get("usage_terms")),
        tags=tuple((t["tag"], t["score"], t["source"], t["t"]) for t in doc["tags"]),
        text=tuple((x["text"], tuple(x["box"]), x["confidence"], x["t"]) for x in doc["ocr"]),
        fields=tuple(flatten_fields(meta).items()),
    )  # fmt: skip
