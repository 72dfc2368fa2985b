"""What the commands share: printing a document or its human form, shared options, progress."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click
from tqdm import tqdm

from assetlens.enrich.cli.root import state
from assetlens.enrich.writer import IngestProgress
from assetlens.search.query_types import MAX_LIMIT


def emit(ctx: click.Context, data: Any, human: Callable[[], None]) -> None:
    """Print one JSON document with ``--json``, else the human form."""
    if state(ctx).as_json:
        click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))
    else:
        human()


def echo_fields(doc: dict[str, Any]) -> None:
    """Print a flat document as ``key: value`` lines."""
    for key, value in doc.items():
        click.echo(f"{key}: {value}")


def show_progress(ctx: click.Context) -> bool:
    """A progress bar on a terminal, never under ``--json``."""
    return not state(ctx).as_json and sys.stderr.isatty()


@contextmanager
def progress_bar(ctx: click.Context, unit: str = "file") -> Iterator[Callable[[IngestProgress], None] | None]:
    """A callback drawing an ingest's progress (files, images/s, ETA) on stderr, or None."""
    if not show_progress(ctx):
        yield None
        return
    with tqdm(unit=unit, smoothing=0.1, dynamic_ncols=True) as bar:

        def draw(p: IngestProgress) -> None:
            bar.total = p.total
            bar.update(p.done - bar.n)
            bar.set_postfix_str(f"{p.images_per_s:.1f} img/s", refresh=False)

        yield draw


wait_option = click.option(
    "--wait", is_flag=True,
    help="If another assetlens process is writing to the library, wait for it instead of refusing.",
)  # fmt: skip
limit_option = click.option(
    "--limit", default=20, show_default=True, type=click.IntRange(1, MAX_LIMIT), help="Assets per page."
)
filter_option = click.option(
    "--filter", "filter_text", metavar="EXPR|JSON",
    help='Filter: compact form (kind:image region:(DE OR AT)) or JSON ({"and": [...]}).',
)  # fmt: skip
cursor_option = click.option("--cursor", help="Continue from a previous page's next_cursor.")
