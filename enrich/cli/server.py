"""HTTP API commands: ``serve`` (run the API with uvicorn) and ``keys`` (create, list, revoke)."""

from __future__ import annotations

import os
from typing import Any

import click

from assetlens.enrich.cli.common import echo_fields, emit
from assetlens.enrich.cli.root import library
from assetlens.enrich.facade.admin import Scope
from assetlens.search.api.keys import SCOPES


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="TCP port.")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes (each loads the model; jobs are shared through the store).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, workers: int, log_level: str) -> None:
    """Serve the HTTP API (docs at /docs, OpenAPI at /openapi.json) for this library.

    Limits and switches come from ASSETLENS_API_* variables (see the README): keys are required
    unless ASSETLENS_API_ANONYMOUS_READ=true; server paths for ingest must lie under
    ASSETLENS_API_ROOTS.
    """
    import uvicorn

    from assetlens.enrich.jobs import api_app
    from assetlens.search.api.settings import ApiSettings

    lib = library(ctx)
    settings = ApiSettings()
    app: Any = "assetlens.enrich.jobs:app_from_env"
    if workers == 1:
        app = api_app(lib.settings, settings)
    else:
        # uvicorn starts each worker process itself and has it import the app by name, so the
        # library and model reach them through the environment (one process needs none of this).
        os.environ["ASSETLENS_DATA_DIR"] = str(lib.data_dir)
        if lib.settings.models.clip_model:
            os.environ["ASSETLENS_CLIP_MODEL"] = lib.settings.models.clip_model
    uvicorn.run(
        app,
        factory=workers > 1,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        h11_max_incomplete_event_size=settings.max_header_kb * 1024,
        timeout_graceful_shutdown=30,
        timeout_worker_healthcheck=300,  # a worker imports torch and loads the model before it answers
        proxy_headers=False,
        server_header=False,
    )


@click.group()
def keys() -> None:
    """API keys: create (shown once), list, revoke. Scopes nest: admin > write > read."""


@keys.command("create")
@click.option("--scope", required=True, type=click.Choice(SCOPES), help="read, write or admin.")
@click.option("--name", default="", help="A label: who or what uses the key.")
@click.pass_context
def keys_create(ctx: click.Context, scope: Scope, name: str) -> None:
    """Create a key and print it. It is shown this once: only its hash is stored."""
    key_id, key = library(ctx).create_api_key(scope, name)
    doc = {"id": key_id, "key": key, "scopes": scope, "name": name}

    def human() -> None:
        click.echo(key)
        click.echo(f"key {key_id} ({scope}) created: store it now, it cannot be shown again", err=True)

    emit(ctx, doc, human)


@keys.command("list")
@click.pass_context
def keys_list(ctx: click.Context) -> None:
    """List keys (id, name, scopes, dates); never the keys themselves."""
    rows = library(ctx).api_keys()

    def human() -> None:
        if not rows:
            click.echo("no keys: create one with `assetlens keys create --scope read`")
        for r in rows:
            state = (
                f"revoked {r['revoked_at']}"
                if r["revoked_at"]
                else f"last used {r['last_used_at'] or 'never'}"
            )
            click.echo(
                f"{r['id']:>4}  {r['scopes']:<6} {r['name'] or '-':<24} created {r['created_at']}  {state}"
            )

    emit(ctx, {"keys": rows}, human)


@keys.command("revoke")
@click.argument("key_id", metavar="ID", type=click.IntRange(1))
@click.pass_context
def keys_revoke(ctx: click.Context, key_id: int) -> None:
    """Revoke key ID: the API refuses it from the next request on."""
    if not library(ctx).revoke_api_key(key_id):
        raise click.BadParameter(f"no key with id {key_id} (see `assetlens keys list`)", param_hint="ID")
    doc = {"id": key_id, "revoked": True}
    emit(ctx, doc, lambda: echo_fields(doc))


COMMANDS = (serve, keys)
