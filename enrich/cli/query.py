"""Search commands: ``search`` and ``similar``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from assetlens.enrich.cli.common import cursor_option, emit, filter_option, limit_option
from assetlens.enrich.cli.root import library
from assetlens.search.query_types import Page, Result


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


def _emit_page(ctx: click.Context, page: Page) -> None:
    doc: dict[str, Any] = {
        "query": page.query,
        "model": library(ctx).model_id,
        "results": [r.as_dict() for r in page.results],
        "next_cursor": page.next_cursor,
        "took_ms": page.took_ms,
        "plan": page.plan,
    }

    def human() -> None:
        _print_results(page.results)
        if page.next_cursor:
            click.echo(f"more: --cursor {page.next_cursor}")

    emit(ctx, doc, human)


@click.command()
@click.argument("text", required=False, default="")
@click.option("--negative", multiple=True, help="Phrase the results should NOT look like (repeatable).")
@click.option("--image", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Example image.")
@click.option("--asset", "asset_id", type=int, help="A stored asset (by id) as the example.")
@click.option(
    "--vector-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A .npy file holding one embedding of the library's model (normalised for you).",
)  # fmt: skip
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
@click.option(
    "--collapse-duplicates", is_flag=True,
    help="One result per near-duplicate group (the best-ranked; the others in its explanation).",
)  # fmt: skip
@click.pass_context
def search(
    ctx: click.Context, text: str, negative: tuple[str, ...], image: Path | None, asset_id: int | None,
    vector_file: Path | None, filter_text: str | None, mode: Any, limit: int, cursor: str | None,
    min_relevance: float | None, sort: str | None, collapse_duplicates: bool,
) -> None:  # fmt: skip
    """Search the library: TEXT ('"red sneaker" -"blurry" shoe^2'), an example image or embedding, a filter.

    Results are per asset (a video's best keyframe, with its time), with a calibrated relevance
    and an explanation; --cursor continues from a previous page.
    """
    if image is not None and asset_id is not None:
        raise click.UsageError("give --image or --asset, not both")
    page = library(ctx).search(
        text, negative=negative, image=image, asset=asset_id, vector=vector_file,
        filter=filter_text, mode=mode, limit=limit, cursor=cursor, min_relevance=min_relevance, sort=sort,
        collapse_duplicates=collapse_duplicates,
    )  # fmt: skip
    _emit_page(ctx, page)


@click.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--asset", "asset_id", type=int, help="Use a stored asset (by id) as the example.")
@filter_option
@limit_option
@cursor_option
@click.pass_context
def similar(
    ctx: click.Context, path: Path | None, asset_id: int | None, filter_text: str | None, limit: int,
    cursor: str | None,
) -> None:  # fmt: skip
    """Find assets that look like the image at PATH, or like asset --asset ID (itself excluded)."""
    if (path is None) == (asset_id is None):
        raise click.UsageError("give either an image PATH or --asset ID")
    example = path if path is not None else asset_id
    assert example is not None
    _emit_page(ctx, library(ctx).similar(example, filter=filter_text, limit=limit, cursor=cursor))


COMMANDS = (search, similar)
