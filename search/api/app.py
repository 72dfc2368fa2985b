"""The FastAPI application: ``create_app(settings, library)``.

Startup (the lifespan) loads the CLIP model and syncs the FAISS index, so the first query is
as fast as the next; a model that cannot load is reported by ``/readyz`` (and 503 problems)
rather than stopping the server. All blocking work (SQLite, CLIP, decoding) runs in worker
threads; see :mod:`search.api.runtime` for how connections are shared.

Middleware, outermost first: CORS, the catch-all (a bug becomes a logged 500 problem), metrics,
the body-size limit.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assetlens.models.errors import ModelError
from assetlens.models.settings import ModelSettings
from assetlens.search.api import errors
from assetlens.search.api.auth import Authenticator
from assetlens.search.api.batcher import TextBatcher
from assetlens.search.api.errors import ApiError, CatchAll, Problem, problem_response
from assetlens.search.api.jobs import JobRunner, JobWorker
from assetlens.search.api.metrics import Metrics, MetricsMiddleware
from assetlens.search.api.routes_assets import router as assets_router
from assetlens.search.api.routes_catalog import router as catalog_router
from assetlens.search.api.routes_hygiene import router as hygiene_router
from assetlens.search.api.routes_jobs import router as jobs_router
from assetlens.search.api.routes_keys import router as keys_router
from assetlens.search.api.routes_ops import STATIC_DIR
from assetlens.search.api.routes_ops import router as ops_router
from assetlens.search.api.routes_search import router as search_router
from assetlens.search.api.runtime import ApiState, Session, SessionPool
from assetlens.search.api.schemas import IngestRequest, SimilarRequest
from assetlens.search.api.settings import ApiSettings
from assetlens.search.filters.columns import ColumnCache
from assetlens.search.library import LibraryCore
from assetlens.search.query import SearchEngine
from assetlens.search.settings import SearchSettings
from assetlens.search.store import Store
from assetlens.search.vectors.index import VectorIndex

log = logging.getLogger("assetlens.api")

DESCRIPTION = """Semantic search, similarity, metadata and ingest for an AssetLens library.

Send `Authorization: Bearer <key>` (keys: `assetlens keys create --scope read|write|admin`).
Scopes nest (admin > write > read). Every error is an RFC 9457 `application/problem+json` document.
"""


class BodyLimit:
    """Refuses request bodies above the limit (413): uploads get ``max_upload_mb``, others ``max_body_kb``.

    A declared ``Content-Length`` is checked up front; a streamed body is counted as it arrives.
    """

    def __init__(self, app: ASGIApp, json_limit: int, upload_limit: int) -> None:
        self.app, self.json_limit, self.upload_limit = app, json_limit, upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        multipart = headers.get("content-type", "").lower().startswith("multipart/form-data")
        limit = self.upload_limit if multipart else self.json_limit
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await problem_response(
                scope["path"], 413, _too_large(limit, multipart), "too-large", "Request body too large"
            )(scope, receive, send)
            return
        received = 0

        async def counting() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise ApiError(
                        413, _too_large(limit, multipart), "too-large", title="Request body too large"
                    )
            return message

        await self.app(scope, counting, send)


def _too_large(limit: int, multipart: bool) -> str:
    setting = "ASSETLENS_API_MAX_UPLOAD_MB" if multipart else "ASSETLENS_API_MAX_BODY_KB"
    return f"request body larger than {limit} bytes ({setting})"


def _open_state(
    settings: ApiSettings, library: LibraryCore, metrics: Metrics, worker: JobWorker | None
) -> ApiState:
    db_path = library.settings.db_path
    library.store  # noqa: B018 - opens and migrates the store before any pooled connection
    # Shared by every pooled session, each thread-safe with its own connection: the index, and
    # the filter column cache (one copy in memory, built once rather than once per session).
    index = VectorIndex(Store(db_path), library.settings.data_dir, library.settings.index_config())
    columns = ColumnCache(Store(db_path))

    def new_session() -> Session:
        store = Store(db_path)
        return Session(store, SearchEngine(store, index, library.encoder, columns=columns))

    jobs = JobRunner(Store(db_path), metrics, worker, settings.max_jobs, settings.job_grace_s)
    return ApiState(
        settings=settings,
        library=library,
        index=index,
        columns=columns,
        pool=SessionPool(new_session, settings.db_connections),
        auth=Authenticator(Store(db_path), settings.anonymous_read),
        batcher=TextBatcher(
            library.encoder.encode_texts, settings.batch_window_ms / 1000, settings.batch_max
        ),
        jobs=jobs,
        metrics=metrics,
    )


def _warm_up(state: ApiState) -> None:
    """Load the model and sync the index now, so that no request pays for it."""
    state.jobs.recover()
    try:
        state.library.encoder.load()
        state.library.encoder.encode_texts(["warm-up"], remember=False)
    except ModelError as exc:
        state.model_error = str(exc)
        log.error("the CLIP model cannot be loaded: %s", exc)
    state.index.sync(save=False)
    state.columns.refresh(force=True)  # the asset rows; each field's column is built on first use
    state.ready = True


def create_app(
    settings: ApiSettings,
    library: LibraryCore | None = None,
    worker: JobWorker | None = None,
    *,
    own_library: bool = False,
) -> FastAPI:
    """The API for one library.

    Args:
        settings: Limits and switches of the HTTP edge.
        library: The library to serve; default: the one ``ASSETLENS_DATA_DIR`` and the model
            settings of the environment name. The app closes only a library it opened.
        worker: Runs ingest and tag jobs (``assetlens serve`` gives one that runs the enrichment
            pipeline); None: those routes answer 503.
        own_library: Close ``library`` when the app stops (one it opens itself is always closed).
    """
    own_library = own_library or library is None
    lib = library or LibraryCore(SearchSettings(), ModelSettings())
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await run_in_threadpool(_open_state, settings, lib, metrics, worker)
        app.state.api = state
        try:
            await run_in_threadpool(_warm_up, state)
            yield
        finally:
            await run_in_threadpool(state.jobs.shutdown)
            state.pool.close()
            state.index.store.close()
            state.columns.store.close()
            state.auth.store.close()
            state.jobs.store.close()
            if own_library:
                lib.close()

    app = FastAPI(
        title="AssetLens",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    routers = (
        search_router,
        assets_router,
        catalog_router,
        hygiene_router,
        jobs_router,
        keys_router,
        ops_router,
    )
    errors.install(app, [r for router in routers for r in router.routes if isinstance(r, APIRoute)])
    for router in routers:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="static")
    # Added innermost first: the body limit sees the raw request, CORS wraps every response.
    app.add_middleware(BodyLimit, json_limit=settings.max_body_bytes, upload_limit=settings.max_upload_bytes)
    app.add_middleware(
        MetricsMiddleware, metrics=metrics, fixed_paths=("/openapi.json", "/docs", "/docs/oauth2-redirect")
    )
    app.add_middleware(CatchAll)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "If-None-Match"],
            expose_headers=["ETag"],
            allow_credentials=False,
            max_age=600,
        )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            # Models read by hand (JSON or multipart on one route), and the problem document.
            for model in (Problem, SimilarRequest, IngestRequest):
                doc = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(doc.pop("$defs", {}))
                components[model.__name__] = doc
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
