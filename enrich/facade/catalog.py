"""The catalog side of :class:`~assetlens.enrich.facade.Library`: assets, DAM fields, facets, export."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any, Literal

from assetlens.enrich.facade.records import AssetRecord, AssetRef, FilterArg, as_filter
from assetlens.search.catalog import export as exporting
from assetlens.search.catalog.meta import (
    BUCKETS,
    SchemaUpdate,
    declare_fields,
    facets,
    filter_sql,
    import_meta,
    load_schema,
    set_meta,
)
from assetlens.search.catalog.meta_import import ImportReport
from assetlens.search.errors import AssetNotFoundError, LibraryNotFoundError, QueryError
from assetlens.search.filters import Filter
from assetlens.search.library import LibraryCore
from assetlens.search.store import Asset
from assetlens.search.transcripts import FORMATS, format_transcript

ExportFormat = Literal["csv", "jsonl", "xmp", "parquet"]


class LibraryParts:
    """What the parts of :class:`Library` share: its core, and the check that it exists."""

    core: LibraryCore

    def _existing(self) -> LibraryCore:
        """The core of a library that exists: reading never creates one.

        Raises:
            LibraryNotFoundError: The folder holds no library (yet).
        """
        if not self._exists():
            raise LibraryNotFoundError(self.core.settings.data_dir)
        return self.core

    def _exists(self) -> bool:
        """Whether the library is made (or open): asking never creates it."""
        return "store" in self.core.__dict__ or self.core.settings.db_path.is_file()


class CatalogMethods(LibraryParts):
    """Reading and editing what the library holds (mixed into :class:`Library`)."""

    def asset(self, id_or_path: AssetRef) -> AssetRecord:
        """One asset with its tags, transcript and the text read in its pictures.

        Raises:
            AssetNotFoundError: No asset has this id, or no ingested file this path.
        """
        found = self.find(id_or_path)
        store = self._existing().store
        tags, segments = store.tags_of([found.id])[found.id], store.segments_of(found.id)
        return AssetRecord(found, tuple(tags), tuple(segments), tuple(store.ocr.lines_of(found.id)))

    def set_meta(self, id_or_path: AssetRef, **fields: Any) -> dict[str, Any]:
        """Set DAM fields of one asset (``None`` removes a field); returns its whole ``meta``.

        Values are checked against the declared field types; all are written or none.
        """
        found = self.find(id_or_path)
        values = {name: "" if value is None else value for name, value in fields.items()}
        return set_meta(self.core.store, found.id, values)

    def import_meta(
        self,
        path: str | os.PathLike[str],
        *,
        format: Literal["csv", "jsonl"] | None = None,
        dry_run: bool = False,
        strict: bool = False,
    ) -> ImportReport:
        """Import DAM fields from a CSV or JSON Lines file, in one transaction.

        Rows are matched to assets by ``uri``, ``path`` or ``content_hash``; rows matching no asset
        and invalid values are reported with their line numbers (``strict``: then nothing is
        written). See ``assetlens meta import --help`` for the formats.
        """
        if format not in (None, "csv", "jsonl"):
            raise QueryError(f"unknown meta file format {format!r}: use csv or jsonl (None: by its content)")
        return import_meta(self._existing().store, Path(path), fmt=format, dry_run=dry_run, strict=strict)

    def declare_fields(self, **types: str) -> SchemaUpdate:
        """Declare meta field types (``rating="number"``, ``rights_expires="date"``); ``""`` undeclares."""
        return declare_fields(self.core.store, types)

    def field_types(self) -> dict[str, str]:
        """The declared meta field types."""
        if not self._exists():
            return {}  # a library not made yet has no declared fields
        return dict(load_schema(self.core.store).as_dict())

    def facets(
        self,
        field: str,
        filter: FilterArg | Filter = None,
        *,
        limit: int = 50,
        by: Literal["year", "month", "day"] | None = None,
    ) -> list[tuple[Any, int]]:
        """``(value, asset count)`` per value of a field, most frequent first.

        ``field`` is a built-in field, ``tag``, or a metadata field; ``by`` buckets a date field.
        """
        if by is not None and by not in BUCKETS:
            raise QueryError(f"by must be one of {', '.join(BUCKETS)}, got {by!r}")
        return facets(self._existing().store, field, as_filter(filter), limit, by=by)

    def export(
        self,
        format: ExportFormat,
        path: str | os.PathLike[str] | IO[str] | None = None,
        filter: FilterArg = None,
        **xmp: Any,
    ) -> exporting.ExportReport:
        """Export assets as CSV or JSON Lines to ``path``, or as XMP sidecars.

        CSV and JSON Lines go to a file (written through a temporary file renamed at the end) or
        an open text stream (``sys.stdout``). XMP writes
        one sidecar per asset beside its file, or below ``path`` when given; ``naming``,
        ``overwrite`` and ``min_score`` are the XMP options of ``assetlens export``. Parquet
        writes every vector (one row per keyframe, with the asset's meta and tags) to ``path``,
        for :meth:`import_vectors` into another library.
        """
        if format not in (*exporting.FORMATS, "parquet"):
            raise QueryError(
                f"unknown export format {format!r}: use {', '.join(exporting.FORMATS)} or parquet"
            )
        store, parsed = self._existing().store, as_filter(filter)
        if format == "parquet":  # every vector, for `assetlens import` into another library
            if not isinstance(path, str | os.PathLike) or filter is not None or xmp:
                raise QueryError("parquet export writes every vector to a file: give a path, no filter")
            from assetlens.search.catalog.parquet_export import export_parquet  # loads pyarrow

            return exporting.ExportReport(format, export_parquet(store, Path(path)), str(path))
        if format == "xmp":
            if hasattr(path, "write"):
                raise QueryError("XMP export writes sidecar files: give a folder (or None), not a stream")
            sidecars = None if path is None else Path(path)
            return exporting.export_xmp(store, parsed, sidecar_dir=sidecars, **xmp)
        if path is None:
            raise QueryError(f"export as {format} needs a file or a stream to write to")
        if xmp:
            raise QueryError(f"{', '.join(sorted(xmp))} apply to XMP export only")
        if isinstance(path, str | os.PathLike):
            return exporting.export_file(store, format, Path(path), parsed)
        write = exporting.export_csv if format == "csv" else exporting.export_jsonl
        return exporting.ExportReport(format, write(store, path, parsed), "-")

    def transcript(self, id_or_path: AssetRef, format: str = "json") -> str:
        """An asset's transcript as ``json``, ``txt``, ``srt`` or ``vtt`` text.

        Raises:
            QueryError: The asset has no transcript yet, or an unknown format.
        """
        if format not in FORMATS:
            raise QueryError(f"unknown transcript format {format!r}: use {', '.join(FORMATS)}")
        found = self.find(id_or_path)
        if found.transcript_model is None:
            raise QueryError(f"asset {found.id} has no transcript: run `assetlens transcribe {found.id}`")
        return format_transcript(self.core.store.segments_of(found.id), format)

    def stats(self) -> dict[str, Any]:
        """Counts: assets by kind, failures, vectors, transcripts, top tags, index state, last job.

        Raises:
            LibraryNotFoundError: No library in the folder yet.
        """
        core = self._existing()
        store, index = core.store, core.index
        index.sync(save=False)
        return {
            "data_dir": str(core.settings.data_dir),
            "model": store.model_id,
            "schema_version": store.schema_version,
            "assets": store.count_assets(),
            "vectors": store.count_vectors(),
            "transcribed": store.count_transcribed(),
            "ocr": store.ocr.counts(),
            "failures": store.count_failures(),
            "top_tags": dict(store.tag_counts(20)),
            "index": index.status(),
            "last_job": self.job(),
        }

    def job(self, job_id: int | None = None) -> dict[str, Any] | None:
        """A run's record (the latest one without an id): ``id, kind, status, started_at,
        finished_at, args, counts``, or None. An interrupted ingest's counts say what it kept."""
        store = self._existing().store
        if job_id is None:
            last = store.last_job()
            if last is None:
                return None
            job_id = int(last["id"])
        return store.job(job_id)

    def find(self, ref: AssetRef) -> Asset:
        """An asset's stored fields, by id, by a string of digits, or by the path of its file.

        Raises:
            AssetNotFoundError: No such asset (the message names what was looked for).
        """
        if isinstance(ref, bool):
            raise AssetNotFoundError(
                f"no asset for {ref!r}: give an asset id or the path of an ingested file"
            )
        store = self._existing().store
        if isinstance(ref, int):
            return store.asset(ref)
        text = os.fspath(ref)
        if isinstance(ref, str) and text.isdigit():
            return store.asset(int(text))
        found = store.asset_by_uri(os.path.abspath(text))
        if found is None:
            raise AssetNotFoundError(
                f"no asset for {text!r}: give an asset id or the path of an ingested file"
            )
        return found

    def count(self, filter: FilterArg | Filter = None) -> int:
        """How many assets pass a filter (all assets without one)."""
        store = self._existing().store
        where, params = filter_sql(store, as_filter(filter))
        return store.count_matching(where, params)
