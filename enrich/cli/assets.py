"""Commands about single assets and the library: ``show``, ``transcript``, ``stats``."""

from __future__ import annotations

from typing import Any

import click

from assetlens.enrich.cli.common import echo_fields, emit
from assetlens.enrich.cli.root import library, state
from assetlens.search.transcripts import FORMATS, format_transcript

SHOWN = ("id", "uri", "kind", "mime", "size", "width", "height", "duration", "created", "status", "error",
         "duplicate_of", "poster_t", "content_hash")  # fmt: skip


@click.command()
@click.argument("ref", metavar="ID|PATH")
@click.pass_context
def show(ctx: click.Context, ref: str) -> None:
    """Show one asset: fields, tags, transcript, text read in its pictures, and the file's metadata."""
    record = library(ctx).asset(ref)
    doc = record.as_dict()

    def human() -> None:
        asset = record.asset
        echo_fields({key: doc[key] for key in SHOWN if doc[key] is not None})
        echo_fields({k: v for k, v in {**asset.embedded, **asset.meta}.items() if v not in (None, [], "")})
        click.echo("tags: " + ", ".join(f"{t['tag']} ({t['score']:.3f})" for t in doc["tags"]))
        if record.transcript:
            click.echo("transcript:\n" + format_transcript(list(record.transcript), "txt").rstrip())
        if record.ocr:
            click.echo("text in pictures:")
            for line in record.ocr:
                at = f"{line.t:.1f}s " if line.t is not None else ""
                click.echo(f"  {at}{line.text} ({line.confidence:.2f})")

    emit(ctx, doc, human)


@click.command()
@click.argument("ref", metavar="ID|PATH")
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="Default txt (json with --json).")
@click.pass_context
def transcript(ctx: click.Context, ref: str, fmt: str | None) -> None:
    """Print an asset's transcript as plain text, SRT, WebVTT or JSON."""
    if fmt is not None and state(ctx).as_json and fmt != "json":
        raise click.UsageError(f"--json prints JSON: it does not go with --format {fmt}")
    chosen = fmt or ("json" if state(ctx).as_json else "txt")
    click.echo(library(ctx).transcript(ref, chosen), nl=False)


@click.command()
@click.pass_context
def stats(ctx: click.Context) -> None:
    """Library counts: assets by kind, failures, vectors, transcripts, tags, index state."""
    doc = library(ctx).stats()
    emit(ctx, doc, lambda: _print_stats(doc))


def _print_stats(doc: dict[str, Any]) -> None:
    assets, index, ocr, job = doc["assets"], doc["index"], doc["ocr"], doc["last_job"]
    kinds = ", ".join(f"{n} {kind}" for kind, n in assets.items() if kind != "failed" and n)
    total = sum(n for kind, n in assets.items() if kind != "failed")
    click.echo(
        f"library: {doc['data_dir']} (model {doc['model'] or 'none yet'}, schema {doc['schema_version']})"
    )
    click.echo(f"assets: {total}" + (f" ({kinds})" if kinds else "") + f", {assets['failed']} failed")
    click.echo(
        f"vectors: {doc['vectors']}, transcribed: {doc['transcribed']}, text read in {ocr['with_text']}"
    )
    click.echo(f"failures recorded: {doc['failures']}")
    if doc["top_tags"]:
        click.echo("top tags: " + ", ".join(f"{tag} ({n})" for tag, n in list(doc["top_tags"].items())[:10]))
    level = "level with the store" if index["in_step"] else "behind the store (the next search catches up)"
    click.echo(f"index: {index['kind']}, {index['vectors']} vectors, {level}")
    if job is not None:
        when = job["finished_at"] or job["started_at"]
        click.echo(f"last job: #{job['id']} {job['kind']} {job['status']} at {when}")


COMMANDS = (show, transcript, stats)
