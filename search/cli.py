"""Search commands: ``search``, ``similar`` and ``index``; added to the root CLI by ``enrich.cli``."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from search.errors import AssetNotFoundError, QueryError
from search.library import Library
from search.query import Result, open_query_image
from search.store import Asset
from search.transcripts import FORMATS, format_transcript


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


def library(ctx: click.Context) -> Library:
    """The library the root command opened."""
    lib = ctx.find_root().obj
    assert isinstance(lib, Library)
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


def _results_doc(query: dict[str, Any], results: list[Result], model: str) -> dict[str, Any]:
    return {"query": query, "model": model, "results": [r.as_dict() for r in results]}


@click.command()
@click.argument("text")
@click.option(
    "--limit", default=20, show_default=True, type=click.IntRange(1, 10_000), help="Assets to return."
)
@json_option
@click.pass_context
def search(ctx: click.Context, text: str, limit: int, as_json: bool) -> None:
    """Find assets that look like TEXT (CLIP text-to-image similarity), best first."""
    lib = library(ctx)
    results = lib.engine.search_text(text, limit)
    emit(ctx, _results_doc({"text": text}, results, lib.encoder.model_id), lambda: _print_results(results))


@click.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--asset", "asset_id", type=int, help="Use a stored asset (by id) as the example.")
@click.option(
    "--limit", default=20, show_default=True, type=click.IntRange(1, 10_000), help="Assets to return."
)
@json_option
@click.pass_context
def similar(ctx: click.Context, path: Path | None, asset_id: int | None, limit: int, as_json: bool) -> None:
    """Find assets that look like the image at PATH, or like asset --asset ID (itself excluded)."""
    if (path is None) == (asset_id is None):
        raise click.UsageError("give either an image PATH or --asset ID")
    lib = library(ctx)
    if asset_id is not None:
        results = lib.engine.similar_to_asset(asset_id, limit)
        query: dict[str, Any] = {"asset_id": asset_id}
    else:
        assert path is not None
        if not path.exists():
            raise QueryError(f"no such file: {path}")
        stored = lib.store.asset_by_uri(os.path.abspath(path))
        if stored is not None and stored.status == "ok":
            results = lib.engine.similar_to_asset(stored.id, limit)
        else:
            results = lib.engine.similar_to_image(open_query_image(path), limit)
        query = {"path": str(path)}
    emit(ctx, _results_doc(query, results, lib.encoder.model_id), lambda: _print_results(results))


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
@json_option
@click.pass_context
def index_build(ctx: click.Context, as_json: bool) -> None:
    """Rebuild the index from every vector in the store and save it."""
    lib = library(ctx)
    for path in (lib.index.path, lib.index.sidecar):
        path.unlink(missing_ok=True)
    lib.index.sync()
    status = lib.index.status()
    emit(ctx, status, lambda: click.echo(f"index rebuilt: {status['vectors']} vectors"))


def find_asset(lib: Library, ref: str) -> Asset:
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
    """Show one asset: fields, tags, transcript, and the metadata read from the file."""
    lib = library(ctx)
    asset = find_asset(lib, ref)
    tags = lib.store.tags_of([asset.id])[asset.id]
    doc = {
        **asset.__dict__,
        "tags": [{"tag": t.tag, "score": round(t.score, 4), "source": t.source, "t": t.t} for t in tags],
        "transcript": lib.store.segments_of(asset.id),
    }

    def human() -> None:
        echo_fields({key: doc[key] for key in _SHOWN if doc[key] is not None})
        echo_fields({k: v for k, v in {**asset.embedded, **asset.meta}.items() if v not in (None, [], "")})
        click.echo("tags: " + ", ".join(f"{t['tag']} ({t['score']:.3f})" for t in doc["tags"]))
        if doc["transcript"]:
            click.echo("transcript:\n" + format_transcript(doc["transcript"], "txt").rstrip())

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
        "failures": store.count_failures(),
        "top_tags": dict(store.tag_counts(20)),
        "index": lib.index.status(),
        "last_job": store.last_job(),
    }
    emit(ctx, doc, lambda: echo_fields(doc))


COMMANDS = (search, similar, index, show, transcript, stats)
