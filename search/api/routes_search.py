"""``POST /v1/search`` and ``POST /v1/similar`` (by stored asset, or by an uploaded picture)."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from assetlens.search.api.auth import Reader
from assetlens.search.api.common import (
    api_state,
    in_session,
    json_body,
    media_type,
    page_doc,
    require_json,
    text_query,
    validated,
    warm_texts,
)
from assetlens.search.api.errors import ApiError, problems
from assetlens.search.api.runtime import Session
from assetlens.search.api.schemas import MAX_LIMIT, Include, PageOut, SearchRequest, SimilarRequest
from assetlens.search.api.uploads import read_upload, unprocessable
from assetlens.search.errors import QueryError
from assetlens.search.filters import parse_filter
from assetlens.search.query_types import Query, open_query_image

router = APIRouter(prefix="/v1", tags=["search"])


def check_limit(request: Request, limit: int) -> None:
    """422 when a page is larger than the server allows (ASSETLENS_API_MAX_PAGE_SIZE)."""
    cap = api_state(request).settings.max_page_size
    if limit > cap:
        raise ApiError(422, f"limit: at most {cap} results per page", "validation", title="Invalid request")


async def run_query(request: Request, query: Query, include: list[Any]) -> dict[str, Any]:
    """Run a query off the event loop (texts through the micro-batcher first); the page document."""
    check_limit(request, query.limit)
    await warm_texts(request, query)

    def work(session: Session) -> dict[str, Any]:
        return page_doc(session.engine.search(query), include, session.store)

    return await in_session(request, work)


@router.post("/search", response_model=PageOut, responses=problems(404, 409))
async def search(body: SearchRequest, request: Request, _: Reader) -> Any:
    """Search: text (``"phrase"``, ``-negative``, ``word^2``) plus ``negative`` phrases, an example
    asset, a raw ``vector`` of the library's model, a filter, or a filter sorted by a field.
    Results are per asset (a video's best keyframe, with its time), with raw cosine, calibrated
    relevance and an explanation; pass ``next_cursor`` back as ``cursor`` for the next page.
    """
    positives, negatives = text_query(body.text, body.negative)
    query = Query(
        text=positives,
        negative=negatives,
        asset_id=body.image_asset_id,
        vector=None if body.vector is None else np.asarray(body.vector, dtype=np.float64),
        filter=parse_filter(body.filter),
        mode=body.mode,
        limit=body.limit,
        cursor=body.cursor,
        min_relevance=body.min_relevance,
        sort=body.sort,
        collapse_duplicates=body.collapse_duplicates,
    )
    return await run_query(request, query, list(body.include))


class SimilarUpload(BaseModel):
    """The form fields that may accompany an uploaded picture."""

    filter: str | None = Field(default=None, max_length=10_000)
    limit: int = Field(default=20, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(default=None, max_length=2048)
    min_relevance: float | None = Field(default=None, ge=0.0, le=1.0)
    include: list[Include] = Field(default=["meta", "tags", "explanation"], max_length=4)


_UPLOAD_SCHEMA = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "A picture (not stored)."},
        "filter": {"type": "string"},
        "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 20},
        "cursor": {"type": "string"},
        "min_relevance": {"type": "number", "minimum": 0, "maximum": 1},
    },
}


@router.post(
    "/similar",
    response_model=PageOut,
    responses=problems(404, 409, 415),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/SimilarRequest"}},
                "multipart/form-data": {"schema": _UPLOAD_SCHEMA},
            },
        }
    },
)
async def similar(request: Request, _: Reader) -> Any:
    """Assets that look like a stored asset (JSON ``{"asset_id": ...}``, itself excluded) or like an
    uploaded picture (multipart ``file``, with optional ``filter``, ``limit``, ``cursor`` fields;
    the picture is not stored). Uploads above the size limit get 413, unreadable pictures or
    pictures above the pixel limit 422.
    """
    content_type = media_type(request)
    if content_type == "multipart/form-data":
        settings = api_state(request).settings
        async with request.form(max_files=1, max_fields=10, max_part_size=64 * 1024) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise unprocessable("send the picture as a multipart file field named 'file'")
            fields = {k: v for k, v in form.items() if k != "file" and isinstance(v, str)}
            if "include" in fields:
                fields["include"] = form.getlist("include")  # type: ignore[assignment]
            options = validated(SimilarUpload, fields, "body")
            data = await read_upload(upload, settings.max_upload_bytes)
        try:
            image = await run_in_threadpool(open_query_image, data, settings.max_pixels)
        except QueryError as exc:
            raise unprocessable(str(exc)) from exc
        query = Query(
            image=image,
            filter=parse_filter(options.filter),
            mode="semantic",
            limit=options.limit,
            cursor=options.cursor,
            min_relevance=options.min_relevance,
        )
        return await run_query(request, query, list(options.include))
    require_json(content_type, 'send JSON ({"asset_id": ...}) or a multipart picture upload')
    body: SimilarRequest = validated(SimilarRequest, await json_body(request), "body")
    query = Query(
        asset_id=body.asset_id,
        filter=parse_filter(body.filter),
        mode="semantic",
        limit=body.limit,
        cursor=body.cursor,
        min_relevance=body.min_relevance,
    )
    return await run_query(request, query, list(body.include))
