"""Tags and facets: what values the library holds, with asset counts."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request

from assetlens.search.api.auth import Reader
from assetlens.search.api.common import in_session
from assetlens.search.api.errors import problems
from assetlens.search.api.runtime import Session
from assetlens.search.api.schemas import FacetsOut, TagsOut
from assetlens.search.catalog.meta import facets

router = APIRouter(prefix="/v1", tags=["catalog"])


@router.get("/tags", response_model=TagsOut, responses=problems())
async def list_tags(
    request: Request,
    _: Reader,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    prefix: Annotated[str, Query(max_length=200, description="Only tags starting with this.")] = "",
) -> Any:
    """The most frequent tags (any source) with the number of assets carrying each."""

    def work(session: Session) -> dict[str, Any]:
        rows = (
            session.store.tag_counts_prefix(prefix, limit)
            if prefix.strip()
            else session.store.tag_counts(limit)
        )
        return {"tags": [{"tag": tag, "count": count} for tag, count in rows]}

    return await in_session(request, work)


@router.get("/facets/{field}", response_model=FacetsOut, responses=problems())
async def get_facets(
    request: Request,
    field: Annotated[str, Path(max_length=200, description="kind, mime, created, tag, or a meta field.")],
    _: Reader,
    filter: Annotated[str | None, Query(max_length=10_000)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    by: Annotated[Literal["year", "month", "day"] | None, Query(description="Bucket dates.")] = None,
) -> Any:
    """Asset counts per value of a field among the assets passing a filter, most frequent first."""

    def work(session: Session) -> dict[str, Any]:
        values = facets(session.store, field, filter or None, limit, by=by)
        return {"field": field, "values": [{"value": v, "count": n} for v, n in values]}

    return await in_session(request, work)
