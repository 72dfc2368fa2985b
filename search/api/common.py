"""Helpers shared by the routes: the state, running work off the event loop, page documents."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from assetlens.search.api.errors import ApiError
from assetlens.search.api.runtime import ApiState, Session
from assetlens.search.query_types import Page, Query, parse_text
from assetlens.search.store import Store

T = TypeVar("T")

READ_PROBLEMS = (400, 401, 403, 404, 422, 503)


def api_state(request: Request) -> ApiState:
    """The running API's state."""
    state: ApiState = request.app.state.api
    return state


async def in_session(request: Request, work: Callable[[Session], T]) -> T:
    """Run ``work`` in a worker thread with a pooled session (never blocks the event loop)."""
    return await run_in_threadpool(api_state(request).run, work)


def client_of(request: Request) -> str:
    """Who sent a request, for logs."""
    return request.client.host if request.client else "unknown"


async def warm_texts(request: Request, query: Query) -> None:
    """Encode the query's phrases through the micro-batcher (they land in the encoder's cache)."""
    if query.mode == "lexical":
        return
    texts = [t for t, _ in (*query.text, *query.negative)]
    if texts:
        await api_state(request).batcher.encode(texts)


def text_query(text: str | None, negative: Sequence[str]) -> tuple[Any, Any]:
    """Positive and negative weighted phrases of a request's ``text`` and ``negative`` list."""
    positives, negatives = parse_text(text or "")
    extra = tuple((phrase.strip(), 1.0) for phrase in negative if phrase.strip())
    return positives, negatives + extra


def page_doc(page: Page, include: Sequence[str], store: Store) -> dict[str, Any]:
    """A page as the API returns it, with the optional parts asked for."""
    wanted = set(include)
    transcripts = (
        store.segments_by_asset([r.asset_id for r in page.results]) if "transcript" in wanted else {}
    )
    results = []
    for result in page.results:
        doc = result.as_dict()
        doc["tags"] = [{**t, "t": None} for t in doc["tags"]]
        for tag, out in zip(result.tags, doc["tags"], strict=False):
            out["t"] = tag.t
        for part in ("tags", "meta", "explanation"):
            if part not in wanted:
                doc[part] = None
        doc["transcript"] = transcripts.get(result.asset_id, []) if "transcript" in wanted else None
        results.append(doc)
    return {"results": results, "next_cursor": page.next_cursor, "took_ms": page.took_ms}


def media_type(request: Request) -> str:
    """The request's content type without parameters, lowercased (``""`` when absent)."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def require_json(content_type: str, hint: str) -> None:
    """415 unless the body is JSON (or untyped); ``hint`` says what the route accepts."""
    if content_type not in ("application/json", ""):
        raise ApiError(415, hint, "media-type", title="Unsupported media type")


async def json_body(request: Request) -> Any:
    """The request's JSON document (422 when it is not JSON)."""
    try:
        return await request.json()
    except (ValueError, RecursionError) as exc:
        message = "invalid JSON" if isinstance(exc, ValueError) else "JSON nested too deeply"
        raise RequestValidationError([{"loc": ("body",), "msg": message, "type": "json_invalid"}]) from None


def validated(model: type[BaseModel], data: Any, where: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [{**e, "loc": (where, *e.get("loc", ()))} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None
