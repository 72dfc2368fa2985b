"""RFC 9457 problem details: every error of the API is ``application/problem+json``.

Domain errors of the search and model layers map to 4xx statuses here, request validation
errors to 422, HTTP errors (unknown route, wrong method) keep their status, and anything else is
a bug: logged with its traceback and answered with a bare 500 problem (see :class:`CatchAll`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assetlens.models.errors import ModelError, VocabularyError
from assetlens.search.errors import (
    AssetNotFoundError,
    FieldTypeError,
    FilterError,
    LearnedTagError,
    ModelMismatchError,
    QueryError,
    QueryVectorError,
    SearchError,
    StoreError,
)

log = logging.getLogger("assetlens.api")

PROBLEM_TYPE = "urn:assetlens:problem:"  # + slug: identifiers, not pages (listed in the README)
PROBLEM_MEDIA_TYPE = "application/problem+json"


class Problem(BaseModel):
    """An RFC 9457 problem document; extension members (``position``, ``errors``...) may follow."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": "urn:assetlens:problem:filter",
                    "title": "Invalid filter",
                    "status": 400,
                    "detail": "at column 25: dangling OR: expected a value after OR",
                    "instance": "/v1/search",
                    "position": 24,
                }
            ]
        },
    )

    type: str = Field(default="about:blank", description="URI identifying the kind of problem.")
    title: str = Field(description="Short summary of the kind of problem.")
    status: int = Field(description="The HTTP status code.")
    detail: str | None = Field(default=None, description="What went wrong with this request.")
    instance: str | None = Field(default=None, description="The request path.")


class ApiError(StarletteHTTPException):
    """An error the API answers with a problem document.

    An HTTP exception, so that FastAPI passes it through unchanged when it is raised while a
    request body is read (the body-size limit).

    Args:
        status: HTTP status.
        detail: What went wrong, for a person.
        slug: Problem type (appended to :data:`PROBLEM_TYPE`); None for ``about:blank``.
        title: Summary; default: the status phrase.
        headers: Extra response headers (``WWW-Authenticate``...).
        extra: Extension members.
    """

    def __init__(
        self,
        status: int,
        detail: str,
        slug: str | None = None,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(status, detail, headers)
        self.status, self.detail, self.slug = status, detail, slug
        self.title = title or HTTPStatus(status).phrase
        self.headers = headers or {}
        self.extra = extra


def problem_response(
    request_path: str | None,
    status: int,
    detail: str | None,
    slug: str | None = None,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    """A ``application/problem+json`` response."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + slug if slug else "about:blank",
        "title": title or _phrase(status),
        "status": status,
        "detail": detail,
        "instance": request_path,
        **{k: v for k, v in extra.items() if v is not None},
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def domain_error(exc: Exception) -> ApiError:
    """The problem for an error of the search or model layer."""
    text = str(exc)
    if isinstance(exc, FieldTypeError):
        return ApiError(
            422,
            text,
            "field-type",
            title="Value does not fit the field type",
            field=exc.field,
            expected=exc.expected,
            position=exc.position,
            path=exc.path,
        )
    if isinstance(exc, FilterError):
        return ApiError(400, text, "filter", title="Invalid filter", position=exc.position, path=exc.path)
    if isinstance(exc, AssetNotFoundError):
        return ApiError(404, text, "not-found", title="No such asset")
    if isinstance(exc, LearnedTagError):
        return ApiError(422, text, "learned-tag", title="Tag cannot be learned")
    if isinstance(exc, QueryVectorError):
        return ApiError(422, text, "vector", title="Invalid query vector")
    if isinstance(exc, QueryError):
        return ApiError(400, text, "query", title="Invalid query")
    if isinstance(exc, ModelMismatchError):
        return ApiError(409, text, "model-mismatch", title="Model mismatch")
    if isinstance(exc, StoreError):
        return ApiError(503, text, "store", title="Library unavailable")
    if isinstance(exc, VocabularyError):
        return ApiError(422, text, "vocabulary", title="Invalid vocabulary")
    if isinstance(exc, ModelError):
        return ApiError(503, text, "model", title="Model unavailable")
    return ApiError(400, text, "search", title="Request cannot be served")


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for error in exc.errors()[:50]:
        loc = [part if isinstance(part, int | str) else str(part) for part in error.get("loc", ())]
        out.append({"loc": loc, "msg": str(error.get("msg", "")), "type": str(error.get("type", ""))})
    return out


def install(app: FastAPI, routes: Sequence[APIRoute] = ()) -> None:
    """Register the handlers that turn every known error into a problem document.

    Args:
        app: The application.
        routes: Its API routes (the ``Allow`` header of a 405 lists the methods of all of them).
    """

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return problem_response(
            request.url.path,
            exc.status,
            exc.detail,
            exc.slug,
            exc.title,
            dict(exc.headers or {}),
            **exc.extra,
        )

    async def domain(request: Request, exc: Exception) -> Response:
        return await api_error(request, domain_error(exc))

    async def validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = _validation_errors(exc)
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"])
        detail = f"{where}: {first['msg']}" if where else str(first["msg"])
        return problem_response(request.url.path, 422, detail, "validation", "Invalid request", errors=errors)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail, default=str)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette lists the methods of the first route matching the path; a path may have several.
            path = request.url.path
            methods = {m for r in routes if r.path_regex.match(path) for m in r.methods or ()}
            headers["Allow"] = ", ".join(sorted(methods)) or headers.get("Allow", "")
        return problem_response(request.url.path, exc.status_code, detail, headers=headers)

    async def bad_unicode(request: Request, exc: Exception) -> Response:
        # JSON may carry unpaired surrogates ("\ud800"), which no file name, SQLite text or
        # tokenizer accepts: the request is at fault, not the server.
        return problem_response(
            request.url.path,
            400,
            "the request holds text that is not valid Unicode (an unpaired surrogate)",
            "unicode",
            "Invalid text",
        )

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(UnicodeEncodeError, bad_unicode)
    app.add_exception_handler(SearchError, domain)
    app.add_exception_handler(ModelError, domain)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(StarletteHTTPException, http_error)


class CatchAll:
    """Outer ASGI middleware: an exception no handler took is a bug; log it, answer a 500 problem.

    Unlike Starlette's own server-error middleware it does not re-raise, so the server keeps one
    log line per bug and the client always gets a problem document.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise  # too late for a problem document: let the server drop the connection
            response = problem_response(
                scope.get("path"), 500, "internal error: it has been logged", "internal", "Internal error"
            )
            await response(scope, receive, send)


BASE_PROBLEMS = (400, 401, 403, 413, 422, 500, 503)  # any /v1 route: body, auth, validation, bug, library


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries declaring problem documents for these statuses (and the base ones)."""
    descriptions = {
        400: "Invalid query, filter, cursor or request body",
        401: "Missing, invalid or revoked API key",
        403: "The key lacks the scope, or a path outside the library roots",
        404: "Not found",
        409: "Conflict",
        413: "Request body or upload too large",
        415: "Unsupported media type",
        422: "Request validation failed, or a value does not fit its field type",
        500: "Internal error (a bug; logged)",
        503: "Model or library unavailable",
    }
    ref = {"$ref": "#/components/schemas/Problem"}
    return {
        status: {"description": descriptions.get(status, _phrase(status)),
                 "content": {PROBLEM_MEDIA_TYPE: {"schema": ref}}}
        for status in sorted({*BASE_PROBLEMS, *statuses})
    }  # fmt: skip
