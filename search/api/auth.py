"""Authentication of API requests: the bearer key check and the scope dependencies.

Keys and scopes are described in :mod:`search.api.keys`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from assetlens.search.api.errors import ApiError
from assetlens.search.api.keys import SCOPES, create_key, hash_key, implied, key_doc
from assetlens.search.api.runtime import ApiState
from assetlens.search.store import Store

__all__ = [
    "SCOPES",
    "Admin",
    "Authenticator",
    "Principal",
    "Reader",
    "Writer",
    "authorize",
    "create_key",
    "key_doc",
    "require",
]  # key helpers re-exported: callers need only this module

MAX_KEY_LENGTH = 200
TOUCH_EVERY_S = 60.0  # last_used_at is written at most this often per key: reads stay reads
REALM = 'Bearer realm="assetlens"'

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer al_...`")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key (id, name, scopes) or anonymous (``key_id`` None)."""

    key_id: int | None
    name: str
    scopes: frozenset[str]


class Authenticator:
    """Checks keys against the store (one small connection, used under a lock)."""

    def __init__(self, store: Store, anonymous_read: bool) -> None:
        self.store = store
        self.anonymous_read = anonymous_read
        self._lock = threading.Lock()
        self._touched: dict[int, float] = {}

    def check(self, key: str) -> Principal | None:
        """The principal of a valid, unrevoked key, else None."""
        if len(key) > MAX_KEY_LENGTH:
            return None
        digest = hash_key(key)
        with self._lock:
            row = self.store.api_key_by_hash(digest)
            # Looked up by the key's hash: no secret is compared here.
            if row is None or row["revoked_at"] is not None:
                return None
            now = time.monotonic()
            if now - self._touched.get(row["id"], -TOUCH_EVERY_S) >= TOUCH_EVERY_S:
                self._touched[row["id"]] = now
                self.store.touch_api_key(row["id"])
        scopes = frozenset().union(*(implied(s) for s in str(row["scopes"]).split() if s in SCOPES))
        return Principal(int(row["id"]), str(row["name"]), scopes)


def _unauthorized(detail: str, invalid: bool) -> ApiError:
    challenge = REALM + (', error="invalid_token"' if invalid else "")
    return ApiError(
        401, detail, "unauthorized", title="Unauthorized", headers={"WWW-Authenticate": challenge}
    )


async def authorize(
    request: Request, scope: str, credentials: HTTPAuthorizationCredentials | None
) -> Principal:
    """The caller of ``request`` if it holds ``scope`` (401 without a valid key, 403 without the scope)."""
    state: ApiState = request.app.state.api
    auth = state.auth
    if credentials is None:
        if request.headers.get("authorization"):
            raise _unauthorized("the Authorization header must be 'Bearer <API key>'", invalid=True)
        if scope == "read" and auth.anonymous_read:
            return Principal(None, "anonymous", frozenset({"read"}))
        raise _unauthorized(f"this route needs an API key with the {scope!r} scope", invalid=False)
    principal = await run_in_threadpool(auth.check, credentials.credentials)
    if principal is None:
        raise _unauthorized("invalid or revoked API key", invalid=True)
    check_scope(principal, scope)
    request.state.principal = principal
    return principal


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency admitting callers that hold ``scope`` (see :func:`authorize`)."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    async def dependency(request: Request, credentials: Credentials) -> Principal:
        return await authorize(request, scope, credentials)

    return dependency


def check_scope(principal: Principal, scope: str) -> None:
    """Raise 403 (or 401 for an anonymous caller) unless ``principal`` holds ``scope``."""
    if scope in principal.scopes:
        return
    if principal.key_id is None:
        raise _unauthorized(f"this request needs an API key with the {scope!r} scope", invalid=False)
    raise ApiError(
        403,
        f"this request needs the {scope!r} scope",
        "forbidden",
        title="Forbidden",
        headers={"WWW-Authenticate": f'{REALM}, error="insufficient_scope", scope="{scope}"'},
    )


Reader = Annotated[Principal, Depends(require("read"))]
Writer = Annotated[Principal, Depends(require("write"))]
Admin = Annotated[Principal, Depends(require("admin"))]
