"""Search commands: ``search``, ``similar`` and ``index``; added to the root CLI by ``enrich.cli``."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from assetlens.search.errors import AssetNotFoundError, QueryError
from assetlens.search.filters import parse_filter
from assetlens.search.library import LibraryCore
from assetlens.search.meta_cli import COMMANDS as META_COMMANDS
from assetlens.search.query import MAX_LIMIT, Page, Query, Result, open_query_image, parse_text
from assetlens.search.store import Asset
from assetlens.search.transcripts import FORMATS, format_transcript


def emit(ctx: click.Context, data: Any, human: Callable[[], None]) -> None:
    """Print one JSON document with ``--json``, else the human form."""
    if ctx.find_root().params.get("as_json") or ctx.params.get("as_json"):
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    else:
        human()


def json_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """The ``--json`` flag every command takes."""
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")(f)


def echo_fields(doc: dict[str, Any]) -> None:
    """Print a flat document as ``key: value`` lines."""
    for key, value in doc.items():
        click.echo(f"{key}: {value}")


def library(ctx: click.Context) -> LibraryCore:
    """The library the root command opened."""
    lib = ctx.find_root().obj
    assert isinstance(lib, LibraryCore)
    return lib


def _print_results(results: list[Result]) -> None:
    if not results:
        click.echo("no results")
    for rank, r in enumerate(results, 1):
        at = f" @ {r.t:.1f}s" if r.t is not None else ""
        tags = ", ".join(t.tag for t in r.tags[:5])
        score = "   -  " if r.score is None else f"{r.score:.4f}"
        click.echo(f"{rank:>3}. {score}  #{r.asset_id}  {r.uri}{at}" + (f"  [{tags}]" if tags else ""))
        if r.segment is not None:
            click.echo(f'       said: "{r.segment["text"].strip()}"')


def _page_doc(query: Query, page: Page, model: str) -> dict[str, Any]:
    return {
        "query": query.describe(),
        "model": model,
        "results": [r.as_dict() for r in page.results],
        "next_cursor": page.next_cursor,
        "took_ms": page.took_ms,
        "plan": page.plan,
    }


def _print_page(page: Page) -> None:
    _print_results(page.results)
    if page.next_cursor:
        click.echo(f"more: --cursor {page.next_cursor}")


limit_option = click.option(
    "--limit", default=20, show_default=True, type=click.IntRange(1, MAX_LIMIT), help="Assets per page."
)
filter_option = click.option(
    "--filter",
    "filter_text",
    help='Filter: compact form (kind:image region:(DE OR AT)) or JSON ({"and": [...]}).',
)
cursor_option = click.option("--cursor", help="Continue from a previous page's next_cursor.")


@click.command()
@click.argument("text", required=False, default="")
@click.option("--negative", multiple=True, help="Phrase the results should NOT look like (repeatable).")
@click.option("--image", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Example image.")
@click.option("--asset", "asset_id", type=int, help="A stored asset (by id) as the example.")
@filter_option
@click.option(
    "--mode", type=click.Choice(["semantic", "lexical", "hybrid"]), default="hybrid", show_default=True
)
@limit_option
@cursor_option
@click.option(
    "--min-relevance", type=click.FloatRange(0.0, 1.0), help="Drop results below this relevance (0-1)."
)
@click.option("--sort", help="score (default), or FIELD[:asc|:desc], e.g. created:desc or meta.sku.")
@json_option
@click.pass_context
def search(
    ctx: click.Context, text: str, negative: tuple[str, ...], image: Path | None, asset_id: int | None,
    filter_text: str | None, mode: str, limit: int, cursor: str | None, min_relevance: float | None,
    sort: str | None, as_json: bool,
) -> None:  # fmt: skip
    """Search the library: TEXT ('"red sneaker" -"blurry" shoe^2'), an example image, a filter, or all three.

    Results are per asset (a video's best keyframe, with its time), with a calibrated relevance
    and an explanation; --cursor continues from a previous page.
    """
    if image is not None and asset_id is not None:
        raise click.UsageError("give --image or --asset, not both")
    positives, negatives = parse_text(text)
    negatives += tuple((phrase, 1.0) for phrase in negative)
    query = Query(
        text=positives, negative=negatives, image=open_query_image(image) if image else None,
        asset_id=asset_id, filter=parse_filter(filter_text), mode=mode, limit=limit,  # type: ignore[arg-type]
        cursor=cursor, min_relevance=min_relevance, sort=sort,
    )  # fmt: skip
    lib = library(ctx)
    page = lib.engine.search(query)
    emit(ctx, _page_doc(query, page, lib.encoder.model_id), lambda: _print_page(page))


@click.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--asset", "asset_id", type=int, help="Use a stored asset (by id) as the example.")
@filter_option
@limit_option
@cursor_option
@json_option
@click.pass_context
def similar(
    ctx: click.Context, path: Path | None, asset_id: int | None, filter_text: str | None, limit: int,
    cursor: str | None, as_json: bool,
) -> None:  # fmt: skip
    """Find assets that look like the image at PATH, or like asset --asset ID (itself excluded)."""
    if (path is None) == (asset_id is None):
        raise click.UsageError("give either an image PATH or --asset ID")
    lib = library(ctx)
    image = None
    if path is not None:
        if not path.exists():
            raise QueryError(f"no such file: {path}")
        stored = lib.store.asset_by_uri(os.path.abspath(path))
        if stored is not None and stored.status == "ok":
            asset_id = stored.id  # an ingested file: use its stored vectors, exclude itself
        else:
            image = open_query_image(path)
    query = Query(image=image, asset_id=asset_id, filter=parse_filter(filter_text), mode="semantic",
                  limit=limit, cursor=cursor)  # fmt: skip
    page = lib.engine.search(query)
    emit(ctx, _page_doc(query, page, lib.encoder.model_id), lambda: _print_page(page))


@click.group()
def index() -> None:
    """Inspect or rebuild the FAISS index (it is derived from the store)."""


@index.command("status")
@json_option
@click.pass_context
def index_status(ctx: click.Context, as_json: bool) -> None:
    """Show whether the index file is level with the store."""
    lib = library(ctx)
    lib.index.sync(save=False)
    status = lib.index.status()
    emit(ctx, status, lambda: echo_fields(status))


@index.command("build")
@click.option(
    "--kind", type=click.Choice(["auto", "flat", "hnsw", "ivf"]), help="Index kind (default: by size)."
)
@json_option
@click.pass_context
def index_build(ctx: click.Context, kind: str | None, as_json: bool) -> None:
    """Rebuild the index from every vector in the store and save it.

    The kind is chosen by size (exact flat search for small libraries, HNSW or IVF above), or
    forced with --kind.
    """
    lib = library(ctx)
    lib.index.build(kind)
    status = lib.index.status()
    emit(ctx, status, lambda: click.echo(f"index rebuilt: {status['vectors']} vectors"))


def find_asset(lib: LibraryCore, ref: str) -> Asset:
    """An asset by id or by the path of its file."""
    if ref.isdigit():
        return lib.store.asset(int(ref))
    found = lib.store.asset_by_uri(os.path.abspath(ref))
    if found is None:
        raise AssetNotFoundError(f"no asset for {ref!r}: give an asset id or the path of an ingested file")
    return found


_SHOWN = ("id", "uri", "kind", "mime", "size", "width", "height", "duration", "created", "status", "error",
          "duplicate_of", "poster_t", "content_hash")  # fmt: skip


@click.command()
@click.argument("ref", metavar="ID|PATH")
@json_option
@click.pass_context
def show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """Show one asset: fields, tags, transcript, text read in its pictures, and the file's metadata."""
    lib = library(ctx)
    asset = find_asset(lib, ref)
    tags = lib.store.tags_of([asset.id])[asset.id]
    doc = {
        **asset.__dict__,
        "tags": [{"tag": t.tag, "score": round(t.score, 4), "source": t.source, "t": t.t} for t in tags],
        "transcript": lib.store.segments_of(asset.id),
        "ocr": [line.as_dict() for line in lib.store.ocr.lines_of(asset.id)],
    }

    def human() -> None:
        echo_fields({key: doc[key] for key in _SHOWN if doc[key] is not None})
        echo_fields({k: v for k, v in {**asset.embedded, **asset.meta}.items() if v not in (None, [], "")})
        click.echo("tags: " + ", ".join(f"{t['tag']} ({t['score']:.3f})" for t in doc["tags"]))
        if doc["transcript"]:
            click.echo("transcript:\n" + format_transcript(doc["transcript"], "txt").rstrip())
        if doc["ocr"]:
            click.echo("text in pictures:")
            for line in doc["ocr"]:
                at = f"{line['t']:.1f}s " if line["t"] is not None else ""
                click.echo(f"  {at}{line['text']} ({line['confidence']:.2f})")

    emit(ctx, doc, human)


@click.command()
@click.argument("ref", metavar="ID|PATH")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="txt", show_default=True)
@click.pass_context
def transcript(ctx: click.Context, ref: str, fmt: str) -> None:
    """Print an asset's transcript as plain text, SRT, WebVTT or JSON."""
    lib = library(ctx)
    asset = find_asset(lib, ref)
    if asset.transcript_model is None:
        raise QueryError(f"asset {asset.id} has no transcript: run `assetlens transcribe {asset.id}`")
    click.echo(format_transcript(lib.store.segments_of(asset.id), fmt), nl=False)


@click.command()
@json_option
@click.pass_context
def stats(ctx: click.Context, as_json: bool) -> None:
    """Library counts: assets by kind, failures, vectors, transcripts, tags, index state."""
    lib = library(ctx)
    store = lib.store
    lib.index.sync(save=False)
    doc = {
        "data_dir": str(lib.settings.data_dir),
        "model": store.model_id,
        "schema_version": store.schema_version,
        "assets": store.count_assets(),
        "vectors": store.count_vectors(),
        "transcribed": store.count_transcribed(),
        "ocr": store.ocr.counts(),
        "failures": store.count_failures(),
        "top_tags": dict(store.tag_counts(20)),
        "index": lib.index.status(),
        "last_job": store.last_job(),
    }
    emit(ctx, doc, lambda: echo_fields(doc))


COMMANDS = (search, similar, index, show, transcript, stats, *META_COMMANDS)
