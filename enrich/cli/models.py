"""``models list`` and ``models fetch``: the registered CLIP models, and weights for offline use."""

from __future__ import annotations

from typing import Any

import click

from assetlens.enrich.cli.common import emit
from assetlens.enrich.cli.root import library
from assetlens.models.registry import CLIP_MODELS, describe, known_architectures, resolve_model


@click.group()
def models() -> None:
    """CLIP models: list them, fetch weights for offline use."""


@models.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also list every open_clip architecture.")
@click.pass_context
def models_list(ctx: click.Context, show_all: bool) -> None:
    """List the registered CLIP models (and whether they are semantic)."""
    rows = [describe(spec) for spec in CLIP_MODELS.values()]
    doc: dict[str, Any] = {"models": rows}
    if show_all:
        doc["architectures"] = known_architectures()

    def human() -> None:
        for row in rows:
            flag = "" if row["semantic"] else "  [NOT SEMANTIC]"
            click.echo(f"{row['name']:<16} {row['model_id']:<36} {row['description']}{flag}")
        if show_all:
            click.echo("architectures (use ARCH@TAG or ARCH@random): " + ", ".join(doc["architectures"]))

    emit(ctx, doc, human)


@models.command("fetch")
@click.argument("name")
@click.pass_context
def models_fetch(ctx: click.Context, name: str) -> None:
    """Download NAME's weights into the machine cache (ASSETLENS_CACHE_DIR/hub), on a networked machine."""
    from assetlens.models.weights import resolve_weights  # the hub client: only this command needs it

    path = resolve_weights(resolve_model(name), library(ctx).core.model_settings)
    emit(ctx, {"name": name, "weights": str(path)}, lambda: click.echo(f"weights: {path}"))


COMMANDS = (models,)
