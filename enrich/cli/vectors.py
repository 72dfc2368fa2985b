"""Vector commands: ``import`` (embeddings from elsewhere) and ``index status|build``."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from assetlens.enrich.cli.common import echo_fields, emit, show_progress, wait_option
from assetlens.enrich.cli.root import library
from assetlens.enrich.facade.admin import IndexKind
from assetlens.search.store.imports import BATCH_ROWS


@contextmanager
def _bar(ctx: click.Context, unit: str, desc: str) -> Iterator[Callable[[int, int], None] | None]:
    """``progress(done, total)`` drawing a bar with the time left on stderr (none for --json or a pipe)."""
    if not show_progress(ctx):
        yield None
        return
    from tqdm import tqdm

    with tqdm(unit=unit, unit_scale=True, desc=desc, file=sys.stderr) as bar:

        def draw(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        yield draw


def _build_progress(draw: Callable[[int, int], None] | None) -> Callable[[Any], None] | None:
    return None if draw is None else (lambda p: draw(p.done, p.total))


@click.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--model", help="The embeddings' model id (default: the files' own, else the library's).")
@click.option(
    "--batch-rows", type=click.IntRange(1, 1_000_000), default=BATCH_ROWS, show_default=True,
    help="Rows read and written per transaction (memory grows with it).",
)  # fmt: skip
@click.option("--no-index", is_flag=True, help="Leave the vector index for the next writer or search.")
@wait_option
@click.pass_context
def import_(
    ctx: click.Context,
    paths: tuple[Path, ...],
    model: str | None,
    batch_rows: int,
    no_index: bool,
    wait: bool,
) -> None:
    """Import embeddings computed elsewhere: Parquet files or folders (uri, embedding[, t, kind, meta,
    tags, created]) and clip-retrieval output folders (img_emb/*.npy with metadata/*.parquet).

    Each row is one vector of an asset (a video frame at t seconds, or a still); importing the same
    file again changes nothing. Rows that cannot be imported are reported with their row number
    and recorded as failures; the rest goes in. Then the vector index is brought level.
    """
    with _bar(ctx, "row", "import") as rows, _bar(ctx, "vec", "index") as vectors:
        report = library(ctx).import_vectors(
            paths, model=model, batch_rows=batch_rows, index=not no_index, wait=wait, progress=rows,
            index_progress=_build_progress(vectors),
        )  # fmt: skip
    doc = report.as_dict()

    def show() -> None:
        click.echo(
            f"added {report.added}, updated {report.updated}, unchanged {report.unchanged}, "
            f"failed {report.failed} ({report.rows} rows, {doc['rows_per_s']} rows/s, job {report.job_id})"
        )
        for failure in report.failures[:20]:
            click.echo(f"  {failure['file']} row {failure['row']}: {failure['reason']}", err=True)
        if report.failed > 20:
            click.echo(f"  ... {report.failed - 20} more, as failures of job {report.job_id}", err=True)

    emit(ctx, doc, show)


@click.group()
def index() -> None:
    """Inspect or rebuild the vector index (it is derived from the store)."""


@index.command("status")
@click.pass_context
def index_status(ctx: click.Context) -> None:
    """Show whether the index file is level with the store."""
    status = library(ctx).index_status()
    emit(ctx, status, lambda: echo_fields(status))


@index.command("build")
@click.option(
    "--kind",
    type=click.Choice(["auto", "flat", "hnsw", "ivf", "ivfpq"]),
    help="Index kind (default: by size).",
)
@click.pass_context
def index_build(ctx: click.Context, kind: IndexKind | None) -> None:
    """Rebuild the index from every vector in the store and save it.

    The kind is chosen by size (exact flat search for small libraries, IVF-PQ with a float16
    re-rank file above), or forced with --kind. Searches (a running `assetlens serve`) go on
    against the old index while it builds, and switch to the new one when it is saved.
    """
    with _bar(ctx, "vec", "index") as draw:
        status = library(ctx).rebuild_index(kind, progress=_build_progress(draw))
    emit(ctx, status, lambda: click.echo(f"index rebuilt: {status['vectors']} vectors"))


COMMANDS = (import_, index)
