"""API keys over HTTP (``admin`` scope); the CLI (``assetlens keys``) does the same locally."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response

from assetlens.search.api.auth import Admin
from assetlens.search.api.common import in_session
from assetlens.search.api.errors import ApiError, problems
from assetlens.search.api.keys import create_key, key_doc
from assetlens.search.api.runtime import Session
from assetlens.search.api.schemas import MAX_ID, KeyCreate, KeyCreated, KeysOut

router = APIRouter(prefix="/v1/keys", tags=["keys"])


@router.get("", response_model=KeysOut, responses=problems())
async def list_keys(request: Request, _: Admin) -> Any:
    """Every key (never the key itself: only its hash is stored)."""
    return await in_session(request, lambda s: {"keys": [key_doc(r) for r in s.store.api_keys()]})


@router.post("", status_code=201, response_model=KeyCreated, responses=problems())
async def new_key(body: KeyCreate, request: Request, _: Admin) -> Any:
    """Create a key. The response is the only time the key is shown."""

    def work(session: Session) -> dict[str, Any]:
        key_id, key = create_key(session.store, body.scope, body.name)
        return {"id": key_id, "key": key, "scopes": body.scope, "name": body.name}

    return await in_session(request, work)


@router.delete("/{key_id}", status_code=204, response_class=Response, responses=problems(404))
async def revoke(key_id: Annotated[int, Path(ge=1, le=MAX_ID)], request: Request, _: Admin) -> Response:
    """Revoke a key: it is refused from the next request on."""
    if not await in_session(request, lambda s: s.store.revoke_api_key(key_id)):
        raise ApiError(404, f"no key with id {key_id}", "not-found", title="No such key")
    return Response(status_code=204)
