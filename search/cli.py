"""Search commands: ``search``, ``similar`` and ``index``; added to the root CLI by ``enrich.cli``."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from search.errors import QueryError
from search.library import Library
from search.query import Result, open_query_image


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
        click.echo(f"{rank:>3}. {r.score:.4f}  #{r.asset_id}  {r.uri}{at}" + (f"  [{tags}]" if tags else ""))


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


COMMANDS = (search, similar, index)
