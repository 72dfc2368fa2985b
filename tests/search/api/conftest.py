"""Fixtures for the HTTP API: a real library (tiny CLIP) with the sample photos, served by TestClient."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import ingester_for, library_settings

from assetlens.enrich.jobs import ProcessJobWorker
from assetlens.search.api import ApiSettings, create_app
from assetlens.search.api.keys import create_key
from assetlens.search.library import LibraryCore

PROBLEM = "application/problem+json"


@dataclass
class Api:
    """A running app, its library, and one key per scope."""

    client: TestClient
    lib: LibraryCore
    photos: Path
    keys: dict[str, str] = field(default_factory=dict)

    def auth(self, scope: str = "read") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[scope]}"}

    def get(self, url: str, scope: str = "read", **kw: Any) -> Any:
        return self.client.get(url, headers={**self.auth(scope), **kw.pop("headers", {})}, **kw)

    def post(self, url: str, scope: str = "read", **kw: Any) -> Any:
        return self.client.post(url, headers={**self.auth(scope), **kw.pop("headers", {})}, **kw)

    def patch(self, url: str, scope: str = "write", **kw: Any) -> Any:
        return self.client.patch(url, headers={**self.auth(scope), **kw.pop("headers", {})}, **kw)

    def delete(self, url: str, scope: str = "admin", **kw: Any) -> Any:
        return self.client.delete(url, headers={**self.auth(scope), **kw.pop("headers", {})}, **kw)

    def asset_id(self, name: str) -> int:
        asset = self.lib.store.asset_by_uri(str(self.photos / name))
        assert asset is not None, name
        return asset.id


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers["content-type"]
    body = response.json()
    assert body["status"] == status and body["title"] and "type" in body and "detail" in body
    assert body["instance"] == response.request.url.path
    return body


@pytest.fixture
def problem() -> Callable[[Any, int], dict[str, Any]]:
    return assert_problem


@pytest.fixture
def make_api(lib: LibraryCore, photos: Path) -> Iterator[Callable[..., Api]]:
    """Build an app over ``lib`` (photos ingested once) with settings overrides."""
    ingester_for(lib).ingest([photos])
    with ExitStack() as stack:

        def make(**settings: Any) -> Api:
            settings.setdefault("roots", (photos,))
            app = create_app(ApiSettings(**settings), lib, ProcessJobWorker(library_settings(lib)))
            client = stack.enter_context(TestClient(app))
            api = Api(client, lib, photos)
            with lib.store.transaction():
                for scope in ("read", "write", "admin"):
                    api.keys[scope] = create_key(lib.store, scope, f"test-{scope}")[1]
            return api

        yield make


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    """The app with default settings (keys required)."""
    return make_api()
