"""API keys: 401 without a valid key, 403 without the scope, hashed storage, the keys CLI."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from click.testing import CliRunner

from assetlens.enrich.cli import cli
from assetlens.search.library import LibraryCore

# One route per scope level, with a body that passes validation.
READ_ROUTES = [
    ("GET", "/v1/tags", None),
    ("POST", "/v1/search", {"text": "a cat"}),
    ("GET", "/v1/jobs/1", None),
]


def call(api: Any, method: str, url: str, body: Any, headers: dict[str, str]) -> Any:
    return api.client.request(method, url, json=body, headers=headers)


@pytest.mark.parametrize(("method", "url", "body"), READ_ROUTES)
def test_missing_key_is_401_with_a_challenge(
    api: Any, method: str, url: str, body: Any, problem: Any
) -> None:
    response = call(api, method, url, body, {})
    problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header", ["Bearer al_not-a-key", "Bearer " + "x" * 500, "Basic dXNlcjpwYXNz", "Bearer", "al_bare-key"]
)
def test_invalid_or_malformed_key_is_401_invalid_token(api: Any, header: str, problem: Any) -> None:
    response = api.client.get("/v1/tags", headers={"Authorization": header})
    problem(response, 401)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_revoked_key_is_refused_from_the_next_request(api: Any, problem: Any) -> None:
    assert api.get("/v1/tags").status_code == 200
    key_id = next(k["id"] for k in api.lib.store.api_keys() if k["name"] == "test-read")
    assert api.delete(f"/v1/keys/{key_id}").status_code == 204
    problem(api.get("/v1/tags"), 401)


@pytest.mark.parametrize(
    ("method", "url", "body", "scope", "needed"),
    [
        ("PATCH", "/v1/assets/1/meta", {"campaign": "x"}, "read", "write"),
        ("POST", "/v1/tag", {}, "read", "write"),
        ("DELETE", "/v1/assets/1", None, "write", "admin"),
        ("POST", "/v1/ingest", {"paths": ["cat.jpg"]}, "write", "admin"),
        ("GET", "/v1/keys", None, "write", "admin"),
        ("POST", "/v1/keys", {"scope": "read"}, "read", "admin"),
    ],
)
def test_wrong_scope_is_403(
    api: Any, method: str, url: str, body: Any, scope: str, needed: str, problem: Any
) -> None:
    response = call(api, method, url, body, api.auth(scope))
    problem = problem(response, 403)
    assert needed in problem["detail"]
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


def test_scopes_nest(api: Any) -> None:
    for scope in ("read", "write", "admin"):
        assert api.get("/v1/tags", scope=scope).status_code == 200
    assert (
        api.patch(f"/v1/assets/{api.asset_id('cat.jpg')}/meta", scope="admin", json={"a": 1}).status_code
        == 200
    )


def test_anonymous_read_when_allowed(make_api: Any, problem: Any) -> None:
    api = make_api(anonymous_read=True)
    assert api.client.get("/v1/tags").status_code == 200
    assert api.client.post("/v1/search", json={"text": "a cat"}).status_code == 200
    problem(api.client.patch("/v1/assets/1/meta", json={"a": 1}), 401)  # writes still need a key
    problem(api.client.get("/v1/tags", headers={"Authorization": "Bearer nope"}), 401)


def test_keys_are_stored_hashed_and_last_use_recorded(api: Any) -> None:
    rows = api.lib.store.db.execute("SELECT key_hash FROM api_keys").fetchall()
    hashes = {r[0] for r in rows}
    assert hashlib.sha256(api.keys["read"].encode()).hexdigest() in hashes
    assert not any(api.keys["read"] in h for h in hashes)
    api.get("/v1/tags")
    used = {k["name"]: k["last_used_at"] for k in api.lib.store.api_keys()}
    assert used["test-read"] is not None and used["test-write"] is None


def test_keys_over_http(api: Any, problem: Any) -> None:
    created = api.post("/v1/keys", scope="admin", json={"scope": "write", "name": "dam-sync"})
    assert created.status_code == 201
    doc = created.json()
    assert doc["key"].startswith("al_") and doc["scopes"] == "write"
    listed = api.get("/v1/keys", scope="admin").json()["keys"]
    assert any(k["name"] == "dam-sync" for k in listed) and all("key" not in k for k in listed)
    fresh = {"Authorization": f"Bearer {doc['key']}"}
    assert (
        api.client.patch(
            f"/v1/assets/{api.asset_id('cat.jpg')}/meta", json={"x": 1}, headers=fresh
        ).status_code
        == 200
    )
    assert api.delete(f"/v1/keys/{doc['id']}").status_code == 204
    problem(api.client.get("/v1/tags", headers=fresh), 401)
    problem(api.delete("/v1/keys/999999"), 404)


def _cli(lib: LibraryCore, *args: str, code: int = 0) -> Any:
    result = CliRunner().invoke(cli, ["--data-dir", str(lib.settings.data_dir), *args])
    assert result.exit_code == code, result.output
    return result


def test_keys_cli_shows_a_key_once(lib: LibraryCore) -> None:
    created = json.loads(_cli(lib, "keys", "create", "--scope", "admin", "--name", "ops", "--json").stdout)
    assert created["key"].startswith("al_") and created["scopes"] == "admin" and created["id"] >= 1
    listed = json.loads(_cli(lib, "keys", "list", "--json").stdout)["keys"]
    assert [k["name"] for k in listed] == ["ops"]
    assert created["key"] not in json.dumps(listed)
    _cli(lib, "keys", "revoke", str(created["id"]))
    assert lib.store.api_keys()[0]["revoked_at"] is not None
    plain = _cli(lib, "keys", "create", "--scope", "read")
    assert plain.stdout.strip().startswith("al_")
    missing = _cli(lib, "keys", "revoke", "42", code=2)
    assert "no key with id 42" in missing.output
