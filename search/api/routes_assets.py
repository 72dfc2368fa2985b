"""Assets: listing by filter, one asset, meta edits, deletion, thumbnails, keyframes, transcripts, text
read in pictures."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, Request, Response
from fastapi.responses import FileResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from assetlens.search.api.auth import Admin, Reader, Writer
from assetlens.search.api.common import api_state, in_session
from assetlens.search.api.errors import ApiError, problems
from assetlens.search.api.routes_search import run_query
from assetlens.search.api.runtime import Session
from assetlens.search.api.schemas import (
    MAX_ID,
    MAX_LIMIT,
    AssetOut,
    Include,
    KeyframesOut,
    MetaOut,
    PageOut,
    TextOut,
)
from assetlens.search.api.thumbs import MAX_SIZE, MIN_SIZE, thumbnail
from assetlens.search.catalog.meta import set_meta
from assetlens.search.errors import FieldTypeError, FilterError
from assetlens.search.filters import parse_filter
from assetlens.search.filters.fields import check_meta_name, flatten_fields
from assetlens.search.query_types import Query as SearchQuery
from assetlens.search.store.ocr import best_line
from assetlens.search.transcripts import format_transcript

router = APIRouter(prefix="/v1/assets", tags=["assets"])

AssetId = Annotated[int, Path(ge=1, le=MAX_ID, description="Asset id.")]
MAX_META_FIELDS = 200
TRANSCRIPT_TYPES = {
    "json": "application/json",
    "srt": "text/plain; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
}


@router.get("", response_model=PageOut, responses=problems())
async def list_assets(
    request: Request,
    _: Reader,
    filter: Annotated[
        str | None, Query(max_length=10_000, description="Filter, string or JSON form.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
    sort: Annotated[str, Query(max_length=200, description="FIELD[:asc|:desc]")] = "created:desc",
    include: Annotated[list[Include] | None, Query(max_length=4)] = None,
) -> Any:
    """Assets passing a filter, sorted by a field (default: newest first), a page at a time."""
    query = SearchQuery(filter=parse_filter(filter), sort=sort, limit=limit, cursor=cursor)
    return await run_query(request, query, list(include) if include is not None else ["meta", "tags"])


@router.get("/{asset_id}", response_model=AssetOut, responses=problems(404))
async def get_asset(asset_id: AssetId, request: Request, _: Reader) -> Any:
    """One asset: fields, meta, the file's metadata (embedded, EXIF, XMP, media), tags and transcript."""

    def work(session: Session) -> dict[str, Any]:
        asset = session.store.asset(asset_id)
        tags = session.store.tags_of([asset_id])[asset_id]
        return {
            **asset.__dict__,
            "tags": [{"tag": t.tag, "score": t.score, "source": t.source, "t": t.t} for t in tags],
            "transcript": session.store.segments_of(asset_id),
            "ocr": [line.as_dict() for line in session.store.ocr.lines_of(asset_id)],
        }

    return await in_session(request, work)


@router.patch("/{asset_id}/meta", response_model=MetaOut, responses=problems(404))
async def patch_meta(
    asset_id: AssetId,
    request: Request,
    changes: Annotated[
        dict[str, Any],
        Body(
            examples=[
                {"campaign": "spring", "region": ["DE", "AT"], "rights.expires": "2026-12-31", "draft": None}
            ]
        ),
    ],
    _: Writer,
) -> Any:
    """Set DAM fields (``meta``): a value sets the field (declared types are enforced: 422 when a value
    does not fit), ``null`` removes it, dotted names and objects address nested fields.
    """
    flat = flatten_fields(changes)
    if len(flat) > MAX_META_FIELDS:
        raise ApiError(
            422, f"at most {MAX_META_FIELDS} fields per request", "validation", title="Invalid request"
        )
    try:
        for name in flat:
            check_meta_name(name.removeprefix("meta."))
    except FilterError as exc:
        raise ApiError(422, str(exc), "field-name", title="Invalid field name") from exc
    sets = {k: v for k, v in flat.items() if v is not None}
    removals = {k: None for k, v in flat.items() if v is None}

    def work(session: Session) -> dict[str, Any]:
        meta = session.store.meta_of(asset_id)
        try:
            if sets:
                meta = set_meta(session.store, asset_id, sets, infer=False)
            if removals:  # only removals are "inferred": None means remove there
                meta = set_meta(session.store, asset_id, removals, infer=True)
        except FieldTypeError:
            raise  # 422 with the field and its type, from the shared handler
        except FilterError as exc:
            raise ApiError(422, str(exc), "field-name", title="Invalid field name") from exc
        return {"asset_id": asset_id, "meta": meta}

    return await in_session(request, work)


@router.delete("/{asset_id}", status_code=204, response_class=Response, responses=problems(404))
async def delete_asset(asset_id: AssetId, request: Request, _: Admin) -> Response:
    """Remove an asset (vectors, tags, transcript, meta) from the library. The file is never touched."""

    def work(session: Session) -> None:
        session.store.asset(asset_id)  # 404 when missing
        with session.store.transaction():
            session.store.delete_asset(asset_id)

    await in_session(request, work)
    return Response(status_code=204)


@router.get(
    "/{asset_id}/thumbnail",
    response_class=FileResponse,
    responses={
        200: {
            "content": {"image/jpeg": {"schema": {"type": "string", "format": "binary"}}},
            "description": "JPEG, at most SIZE pixels on its longer side",
        },
        304: {"description": "Not modified (If-None-Match)"},
        **problems(404),
    },
)
async def get_thumbnail(
    asset_id: AssetId,
    request: Request,
    _: Reader,
    size: Annotated[int, Query(ge=MIN_SIZE, le=MAX_SIZE, description="Longer side, pixels.")] = 256,
) -> Response:
    """A JPEG of an image, or of a video's poster keyframe (audio: 404). Cached on disk by content."""
    state = api_state(request)
    asset = await in_session(request, lambda s: s.store.asset(asset_id))
    path, hit = await run_in_threadpool(
        thumbnail, asset, size, state.data_dir / "thumbs", state.settings.max_pixels
    )
    etag = f'"{path.stem}"'
    headers = {
        "ETag": etag,
        "Cache-Control": "private, max-age=86400",
        "X-Thumbnail-Cache": "hit" if hit else "miss",
    }
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    return FileResponse(path, media_type="image/jpeg", headers=headers)


@router.get("/{asset_id}/keyframes", response_model=KeyframesOut, responses=problems(404))
async def get_keyframes(asset_id: AssetId, request: Request, _: Reader) -> Any:
    """The asset's vectors in time order (one per video keyframe), each with the tags that peak there."""

    def work(session: Session) -> dict[str, Any]:
        asset = session.store.asset(asset_id)
        tags = [t for t in session.store.tags_of([asset_id])[asset_id] if t.source == "clip"]
        frames = []
        for vector_id, t in session.store.keyframes_of(asset_id):
            here = [
                {"tag": g.tag, "score": g.score, "source": g.source, "t": g.t}
                for g in tags
                if g.t == t or (t is None and g.t is None)
            ]
            frames.append({"t": t, "vector_id": vector_id, "tags": here})
        return {"asset_id": asset_id, "poster_t": asset.poster_t, "keyframes": frames}

    return await in_session(request, work)


@router.get(
    "/{asset_id}/transcript",
    responses={
        200: {
            "description": "The transcript",
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/plain": {"schema": {"type": "string"}},
                "text/vtt": {"schema": {"type": "string"}},
            },
        },
        **problems(404),
    },
)
async def get_transcript(
    asset_id: AssetId,
    request: Request,
    _: Reader,
    format: Annotated[Literal["json", "srt", "vtt", "txt"], Query()] = "json",
) -> Response:
    """The asset's transcript: JSON segments with word times, SubRip, WebVTT or plain text."""

    def work(session: Session) -> str:
        asset = session.store.asset(asset_id)
        if asset.transcript_model is None:
            raise ApiError(404, f"asset {asset_id} has no transcript", "no-transcript", title="No transcript")
        return format_transcript(session.store.segments_of(asset_id), format)

    text = await in_session(request, work)
    return PlainTextResponse(text, media_type=TRANSCRIPT_TYPES[format])


@router.get("/{asset_id}/text", response_model=TextOut, responses=problems(404))
async def get_text(
    asset_id: AssetId,
    request: Request,
    _: Reader,
    q: Annotated[
        str | None, Query(max_length=1000, description="Words: the line holding most is `match`.")
    ] = None,
) -> Any:
    """The text read in the asset's pictures (OCR): lines with box, confidence and keyframe time.

    404 when the asset was never read (``assetlens ocr ID`` reads it); an empty list when it was
    read and holds no text.
    """

    def work(session: Session) -> dict[str, Any]:
        session.store.asset(asset_id)  # 404 when missing
        model = session.store.ocr.read_by(asset_id)
        if model is None:
            raise ApiError(
                404, f"asset {asset_id} was not read for text: run `assetlens ocr {asset_id}`", "no-text",
                title="Not read",
            )  # fmt: skip
        lines = session.store.ocr.lines_of(asset_id)
        match = best_line(lines, re.findall(r"\w+", q)) if q else None
        return {
            "asset_id": asset_id,
            "model": model,
            "lines": [line.as_dict() for line in lines],
            "match": match.as_dict() if match is not None else None,
        }

    return await in_session(request, work)
