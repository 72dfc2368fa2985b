"""Operations: liveness, readiness, Prometheus metrics, and the search page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from assetlens.search.api.auth import authorize, bearer
from assetlens.search.api.common import api_state
from assetlens.search.api.errors import ApiError, problems
from assetlens.search.api.metrics import Labels
from assetlens.search.api.runtime import ApiState, Session
from assetlens.search.api.schemas import Health

STATIC_DIR = Path(__file__).parent / "static"
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Any:
    """The process is alive (no dependency is checked)."""
    return {"status": "ok", "checks": {}}


def _readiness(state: ApiState) -> tuple[bool, dict[str, str]]:
    checks: dict[str, str] = {}
    try:
        state.run(lambda s: s.store.db.execute("SELECT 1 FROM assets LIMIT 1").fetchall())
        checks["store"] = "ok"
    except Exception as exc:  # any failure means "not ready", and the reason is reported
        checks["store"] = f"error: {exc}"
    try:
        state.index.sync(save=False)
        checks["index"] = "ok" if state.index.status()["in_step"] else "behind the store"
    except Exception as exc:
        checks["index"] = f"error: {exc}"
    checks["model"] = "ok" if state.model_error is None else f"error: {state.model_error}"
    checks["startup"] = "ok" if state.ready else "starting"
    return all(v == "ok" for v in checks.values()), checks


@router.get("/readyz", response_model=Health, responses={503: {"model": Health, "description": "Not ready"}})
async def readyz(request: Request) -> Any:
    """Ready to serve: the store opens, the index is level with it, the model is loaded."""
    ready, checks = await run_in_threadpool(_readiness, api_state(request))
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status_code=200 if ready else 503
    )


def _gauges(state: ApiState) -> list[tuple[str, str, str, list[tuple[Labels, float]]]]:
    def read(session: Session) -> tuple[dict[str, int], int, list[tuple[str, str, int]]]:
        return session.store.count_assets(), session.store.count_vectors(), session.store.job_counts()

    assets, vectors, jobs = state.run(read)
    batcher = state.batcher
    return [
        (
            "assetlens_assets",
            "gauge",
            "Assets in the library by kind (failed: ingest failed).",
            [((("kind", k),), float(n)) for k, n in sorted(assets.items())],
        ),
        ("assetlens_vectors", "gauge", "Vectors in the store.", [((), float(vectors))]),
        (
            "assetlens_index_vectors",
            "gauge",
            "Vectors in this process's FAISS index.",
            [((), float(state.index.size))],
        ),
        (
            "assetlens_jobs",
            "gauge",
            "Jobs recorded in the store by kind and status.",
            [((("kind", k), ("status", s)), float(n)) for k, s, n in jobs],
        ),
        (
            "assetlens_jobs_running",
            "gauge",
            "Jobs (worker processes) this server runs now.",
            [((), float(state.jobs.running()))],
        ),
        (
            "assetlens_text_batches_total",
            "counter",
            "Text encoder calls made by the micro-batcher.",
            [((), float(batcher.batches))],
        ),
        (
            "assetlens_text_batch_texts_total",
            "counter",
            "Texts encoded by the micro-batcher.",
            [((), float(batcher.texts))],
        ),
    ]


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text"},
        **problems(),
    },
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics: requests and latency by route and status, jobs, library and index sizes."""
    state = api_state(request)
    if not state.settings.metrics_public:
        await authorize(request, "read", await bearer(request))
    gauges = await run_in_threadpool(_gauges, state)
    return PlainTextResponse(state.metrics.render(gauges), media_type=METRICS_TYPE)


@router.get("/", include_in_schema=False)
async def index_page() -> Response:
    """The search page."""
    page = STATIC_DIR / "index.html"
    if not page.is_file():
        raise ApiError(404, "the search page is not installed", "not-found", title="Not found")
    return FileResponse(page, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"})
