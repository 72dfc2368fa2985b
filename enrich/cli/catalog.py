"""DAM metadata commands: ``meta set|import|schema``, ``facets`` and ``export``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

import click

from assetlens.enrich.cli.common import echo_fields, emit
from assetlens.enrich.cli.root import library, state
from assetlens.enrich.facade.catalog import ExportFormat
from assetlens.search.catalog import export as exporting
from assetlens.search.catalog.csv_cells import cell_text
from assetlens.search.catalog.meta import BUCKETS
from assetlens.search.filters import parse_filter, to_json
from assetlens.search.filters.fields import flatten_fields


def _pairs(items: tuple[str, ...], what: str) -> dict[str, str]:
    """``NAME=VALUE`` arguments as a dict (the value may be empty, and may contain ``=``)."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise click.UsageError(f"expected {what}, got {item!r}")
        out[name.strip()] = value
    return out


def _echo_meta(meta: dict[str, Any]) -> None:
    fields = flatten_fields(meta)
    if not fields:
        click.echo("(no fields)")
    for name, value in fields.items():
        click.echo(f"{name}: {cell_text(value, ', ')}")


@click.group()
def meta() -> None:
    """DAM metadata (meta): set fields, import them from CSV or JSON Lines, declare their types."""


@meta.command("set")
@click.argument("ref", metavar="ID|PATH")
@click.argument("assignments", nargs=-1, required=True, metavar="NAME=VALUE...")
@click.pass_context
def meta_set(ctx: click.Context, ref: str, assignments: tuple[str, ...]) -> None:
    """Set fields of one asset: NAME=VALUE (dots nest: camera.make=Nikon); NAME= removes a field.

    Values are checked against declared types (`assetlens meta schema set`): dates accept ISO and
    now/today offsets (today+1y), lists are comma-separated. Undeclared fields read numbers and
    true/false as such. All fields are written together or not at all.
    """
    lib = library(ctx)
    asset = lib.find(ref)
    new = lib.set_meta(asset.id, **_pairs(assignments, "NAME=VALUE"))
    emit(ctx, {"id": asset.id, "uri": asset.uri, "meta": new}, lambda: _echo_meta(new))


@meta.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "jsonl"]), help="Default: by extension or content."
)
@click.option("--dry-run", is_flag=True, help="Check and count every row, write nothing.")
@click.option("--strict", is_flag=True, help="Write nothing (and exit 1) if any row is invalid.")
@click.pass_context
def meta_import(
    ctx: click.Context, file: Path, fmt: Literal["csv", "jsonl"] | None, dry_run: bool, strict: bool
) -> None:
    """Import fields from FILE, CSV or JSON Lines, in one transaction.

    \b
    CSV: a header row; a `uri` column (as stored), a `path` column (relative paths are read
    from FILE's folder) or a `content_hash` column names the asset (a hash held by several
    assets updates all); if any column is `meta.NAME`, only those are read (so an
    `assetlens export` file imports back), else every other column is a field. Empty cells are
    ignored; cells holding a JSON array are lists.
    JSON Lines: {"uri": ..., "meta": {...}} or flat objects; values keep their JSON types.
    Imports set fields, never remove them (use `meta set ID NAME=`).
    Rows that match no asset and rows with invalid values are reported with their line numbers.
    """
    report = library(ctx).import_meta(file, format=fmt, dry_run=dry_run, strict=strict)

    def human() -> None:
        click.echo(
            f"{report.rows} rows: {report.matched} matched, {report.updated} assets updated, "
            f"{report.unmatched_count} unmatched, {report.error_count} invalid"
            + ("" if report.written else " (nothing written)")
        )
        for line, key in report.unmatched[:50]:
            click.echo(f"  line {line}: no asset for {key}")
        for line, message in report.errors[:50]:
            click.echo(f"  line {line}: {message}")
        if report.ignored:
            click.echo("ignored columns: " + ", ".join(report.ignored))

    emit(ctx, report.as_dict(), human)
    if strict and report.error_count:
        click.echo(f"error: {report.error_count} invalid rows: nothing was written", err=True)
        ctx.exit(1)


@meta.group("schema")
def schema() -> None:
    """Declare the types of meta fields: string, number, date, boolean, list."""


@schema.command("set")
@click.argument("declarations", nargs=-1, required=True, metavar="NAME=TYPE...")
@click.pass_context
def schema_set(ctx: click.Context, declarations: tuple[str, ...]) -> None:
    """Declare field types, e.g. rights_expires=date rating=number keywords=list; NAME= undeclares.

    Values written from then on must fit; stored values that do not fit are listed (they are kept,
    typed filters skip them).
    """
    update = library(ctx).declare_fields(**_pairs(declarations, "NAME=TYPE"))

    def human() -> None:
        for name, kind in update.schema.as_dict().items():
            click.echo(f"{name}: {kind}")
        if update.conflict_count:
            click.echo(f"warning: {update.conflict_count} stored values do not fit their new type:", err=True)
            for asset_id, name, value in update.conflicts[:20]:
                click.echo(f"  asset {asset_id}: {name} = {value!r}", err=True)

    emit(ctx, update.as_dict(), human)


@schema.command("show")
@click.pass_context
def schema_show(ctx: click.Context) -> None:
    """Show the declared field types."""
    types = library(ctx).field_types()
    emit(ctx, types, lambda: echo_fields(types) if types else click.echo("(no declared fields)"))


@click.command("facets")
@click.argument("field")
@click.option("--filter", "filter_text", metavar="EXPR|JSON", help="Only assets passing this filter.")
@click.option(
    "--limit", default=50, show_default=True, type=click.IntRange(1, 100_000), help="Values to list."
)
@click.option("--by", type=click.Choice(list(BUCKETS)), help="Count a date field by year, month or day.")
@click.pass_context
def facets_command(ctx: click.Context, field: str, filter_text: str | None, limit: int, by: Any) -> None:
    """Count assets per value of FIELD, most frequent first.

    FIELD is a built-in field (kind, mime, ingest_status, ext, width, orientation, created...), `tag`, or
    a metadata field (region or meta.region: user meta wins over the file's embedded metadata;
    each element of a list counts).
    """
    lib = library(ctx)
    parsed = parse_filter(filter_text)
    values = lib.facets(field, parsed, limit=limit, by=by)
    doc = {
        "field": field, "by": by, "filter": None if parsed is None else to_json(parsed),
        "assets": lib.count(parsed), "values": [{"value": v, "count": n} for v, n in values],
    }  # fmt: skip

    def human() -> None:
        if not values:
            click.echo("no values")
        width = max((len(str(v)) for v, _ in values), default=0)
        for value, count in values:
            click.echo(f"{value!s:<{width}}  {count}")

    emit(ctx, doc, human)


@click.command("export")
@click.option(
    "--format",
    "fmt",
    type=click.Choice([*exporting.FORMATS, "parquet"]),
    help="Default: by --output's extension.",
)
@click.option("--filter", "filter_text", metavar="EXPR|JSON", help="Only assets passing this filter.")
@click.option("--output", "-o", default="-", show_default=True, help="CSV/JSON Lines file, - for stdout.")
@click.option(
    "--sidecar-dir", type=click.Path(file_okay=False, path_type=Path),
    help="XMP: write sidecars below DIR (mirroring the asset folders), not beside the files.",
)  # fmt: skip
@click.option(
    "--naming", type=click.Choice(["ext", "base"]), default="ext", show_default=True,
    help="XMP: ext = NAME.EXT.xmp (darktable, digiKam); base = NAME.xmp (Lightroom, Bridge).",
)  # fmt: skip
@click.option("--overwrite", is_flag=True, help="XMP: also merge into sidecars written by other programs.")
@click.option(
    "--min-score", type=click.FloatRange(0.0, 1.0), default=0.0, show_default=True,
    help="XMP: model tags scoring less are not written as keywords.",
)  # fmt: skip
@click.pass_context
def export_command(
    ctx: click.Context, fmt: ExportFormat | None, filter_text: str | None, output: str,
    sidecar_dir: Path | None, naming: Literal["ext", "base"], overwrite: bool, min_score: float,
) -> None:  # fmt: skip
    """Export assets (fields, meta, tags with scores, file metadata, transcript) as CSV, JSON Lines or XMP.

    \b
    CSV and JSON Lines go to --output (stdout by default) and import back with
    `assetlens meta import`. XMP writes one sidecar per asset (keywords in dc:subject; title,
    description, creator, rights; tag scores and meta fields in the assetlens namespace) and
    merges into an existing sidecar, keeping its other properties; a sidecar written by another
    program is skipped unless --overwrite. Parquet writes every vector (one row per keyframe,
    with the asset's meta and tags) to --output, for `assetlens import`.
    """
    suffixes: dict[str, ExportFormat] = {
        ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"
    }  # fmt: skip
    fmt = fmt or suffixes.get(Path(output).suffix.lower())
    if fmt is None:
        raise click.UsageError("give --format csv, jsonl or xmp (or an --output ending in .csv or .jsonl)")
    xmp_only = sidecar_dir is not None or overwrite or naming != "ext" or min_score > 0
    if fmt != "xmp" and xmp_only:
        raise click.UsageError("--sidecar-dir, --naming, --overwrite and --min-score apply to --format xmp")
    if fmt == "xmp" and output != "-":
        raise click.UsageError("--format xmp writes sidecars: use --sidecar-dir, not --output")
    if fmt != "xmp" and output == "-" and state(ctx).as_json:
        raise click.UsageError("--json needs --output FILE: the export itself goes to stdout")
    if fmt == "parquet" and (output == "-" or filter_text):
        raise click.UsageError("--format parquet writes every vector to an --output FILE (no --filter)")
    lib = library(ctx)
    if fmt == "xmp":
        report = lib.export(
            "xmp", sidecar_dir, filter_text, naming=naming, overwrite=overwrite, min_score=min_score
        )
    elif output == "-":
        report = lib.export(fmt, sys.stdout, filter_text)
    else:
        report = lib.export(fmt, Path(output), filter_text)

    def human() -> None:
        where = {None: "beside the files", "-": "stdout"}.get(report.output, report.output)
        merged = f" ({report.merged} merged into existing sidecars)" if report.merged else ""
        err = report.output == "-"  # with the data on stdout, the summary goes to stderr
        noun = "vectors" if fmt == "parquet" else "assets"
        click.echo(f"exported {report.assets} {noun} as {fmt} to {where}{merged}", err=err)
        if report.skipped_count:
            click.echo(f"skipped {report.skipped_count}:", err=err)
            for uri, reason in report.skipped[:50]:
                click.echo(f"  {uri}: {reason}", err=err)

    emit(ctx, report.as_dict(), human)


COMMANDS = (meta, facets_command, export_command)
