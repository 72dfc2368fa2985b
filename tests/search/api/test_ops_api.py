"""Health, readiness, metrics, OpenAPI, the page, HTTP-level problems, limits, CORS, and a fuzz pass."""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from helpers import open_library

from assetlens.search.api import ApiSettings, create_app
from assetlens.search.api.routes_ops import STATIC_DIR

SAMPLE = re.compile(
    r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? (-?[0-9.e+-]+|\+Inf|NaN)$'
)


def test_healthz_and_readyz(api: Any) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok", "checks": {}}
    ready = api.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"store": "ok", "index": "ok", "model": "ok", "startup": "ok"}


def test_readyz_is_503_and_queries_are_503_when_the_model_cannot_load(tmp_path: Path, problem: Any) -> None:
    lib = open_library(tmp_path / "empty", clip_model="ViT-B-32")  # no weights offline
    try:
        with TestClient(create_app(ApiSettings(anonymous_read=True), lib)) as client:
            ready = client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["checks"]["model"].startswith("error:")
            assert client.get("/healthz").status_code == 200
            body = problem(client.post("/v1/search", json={"text": "a cat"}), 503)
            assert "ASSETLENS_CLIP_CHECKPOINT" in body["detail"]
    finally:
        lib.close()


def test_metrics_are_prometheus_text(api: Any) -> None:
    api.post("/v1/search", json={"text": "a cat"})
    api.get("/v1/assets/999999")
    api.client.get("/no/such/route")
    response = api.client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith(
        "text/plain; version=0.0.4"
    )
    lines = response.text.splitlines()
    samples = [line for line in lines if not line.startswith("#")]
    assert samples and all(SAMPLE.match(line) for line in samples), [
        s for s in samples if not SAMPLE.match(s)
    ]
    text = response.text
    assert re.search(
        r'^assetlens_http_requests_total\{method="POST",route="/v1/search",status="200"\} 1$', text, re.M
    )
    assert re.search(r'route="/v1/assets/\{asset_id\}",status="404"\} 1$', text, re.M)
    assert re.search(r'route="unmatched",status="404"', text)
    assert re.search(
        r'^assetlens_http_request_duration_seconds_bucket\{method="POST",route="/v1/search",le="\+Inf"\} 1$',
        text,
        re.M,
    )
    assert re.search(r'^assetlens_assets\{kind="image"\} 8$', text, re.M)
    assert re.search(r"^assetlens_index_vectors 8$", text, re.M)
    assert re.search(r"^assetlens_text_batches_total [1-9]", text, re.M)
    assert "# TYPE assetlens_http_request_duration_seconds histogram" in lines


def test_metrics_can_require_a_key(make_api: Any, problem: Any) -> None:
    api = make_api(metrics_public=False)
    problem(api.client.get("/metrics"), 401)
    assert api.get("/metrics").status_code == 200


def test_openapi_declares_every_response(api: Any) -> None:
    schema = api.client.get("/openapi.json").json()
    assert (
        "Problem" in schema["components"]["schemas"] and "SimilarRequest" in schema["components"]["schemas"]
    )
    expected = {
        "/v1/search": "post",
        "/v1/similar": "post",
        "/v1/assets": "get",
        "/v1/assets/{asset_id}": "get",
        "/v1/assets/{asset_id}/meta": "patch",
        "/v1/assets/{asset_id}/thumbnail": "get",
        "/v1/assets/{asset_id}/keyframes": "get",
        "/v1/assets/{asset_id}/transcript": "get",
        "/v1/tags": "get",
        "/v1/facets/{field}": "get",
        "/v1/ingest": "post",
        "/v1/tag": "post",
        "/v1/jobs/{job_id}": "get",
        "/v1/keys": "post",
        "/healthz": "get",
        "/readyz": "get",
        "/metrics": "get",
    }
    for path, method in expected.items():
        assert method in schema["paths"][path], path
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if not path.startswith("/v1/"):
                continue
            responses = operation["responses"]
            for status in ("401", "403"):
                assert "application/problem+json" in responses[status]["content"], (path, method, status)
            assert "HTTPValidationError" not in json.dumps(responses), (path, method)
            assert operation.get("security"), (path, method)
    assert schema["paths"]["/v1/assets/{asset_id}"]["delete"]["responses"]["204"]
    assert "multipart/form-data" in schema["paths"]["/v1/similar"]["post"]["requestBody"]["content"]
    assert api.client.get("/docs").status_code == 200


def test_search_page_and_static_files(api: Any) -> None:
    if not (STATIC_DIR / "index.html").exists():
        pytest.skip("the search page is not installed")
    page = api.client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assets = [p.name for p in STATIC_DIR.iterdir() if p.is_file() and p.name != "index.html"]
    for name in assets:
        assert api.client.get(f"/static/{name}").status_code == 200
    assert api.client.get("/static/../settings.py").status_code == 404


def test_http_errors_are_problems(api: Any, problem: Any) -> None:
    problem(api.client.get("/v1/nothing-here"), 404)
    wrong = api.client.put("/v1/search", json={})
    problem(wrong, 405)
    assert "POST" in wrong.headers["allow"]
    problem(api.post("/v1/search", content=b'{"text": ', headers={"content-type": "application/json"}), 422)
    problem(
        api.post(
            "/v1/search",
            content=b"[" * 100_000 + b"]" * 100_000,
            headers={"content-type": "application/json"},
        ),
        400,
    )  # too deep to parse
    deep = {"not": {}}
    for _ in range(200):
        deep = {"not": deep}
    assert api.post("/v1/search", json={"text": "x", "filter": deep}).status_code == 400
    # JSON escapes may carry an unpaired surrogate, which no SQLite text or file name accepts.
    lone = b'{"text": "\\ud800 surrogate"}'
    problem(api.post("/v1/search", content=lone, headers={"content-type": "application/json"}), 422)
    lone = b'{"text": "x", "filter": {"field": "name", "eq": "\\ud800"}}'
    problem(api.post("/v1/search", content=lone, headers={"content-type": "application/json"}), 400)
    problem(
        api.patch(
            "/v1/assets/1/meta", content=b'{"a": "\\udfff"}', headers={"content-type": "application/json"}
        ),
        400,
    )


def test_body_limits(make_api: Any, problem: Any) -> None:
    api = make_api(max_body_kb=1)
    big = {"text": "x" * 900, "negative": ["y" * 500]}
    assert "ASSETLENS_API_MAX_BODY_KB" in problem(api.post("/v1/search", json=big), 413)["detail"]

    def chunks() -> Any:  # no Content-Length: the body is counted as it streams
        yield b'{"text": "'
        for _ in range(10):
            yield b"x" * 500
        yield b'"}'

    streamed = api.post("/v1/search", content=chunks(), headers={"content-type": "application/json"})
    problem(streamed, 413)
    assert api.post("/v1/search", json={"text": "small"}).status_code == 200


def test_cors(make_api: Any) -> None:
    api = make_api(cors_origins=("https://dam.example",))
    preflight = api.client.options(
        "/v1/search",
        headers={
            "Origin": "https://dam.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://dam.example"
    denied = api.client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in denied.headers


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ASSETLENS_API_ROOTS", f"{tmp_path}/a:{tmp_path}/b,{tmp_path}/c")
    monkeypatch.setenv("ASSETLENS_API_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("ASSETLENS_API_ANONYMOUS_READ", "true")
    monkeypatch.setenv("ASSETLENS_API_MAX_UPLOAD_MB", "5")
    settings = ApiSettings()
    assert settings.roots == tuple((tmp_path / n).resolve() for n in "abc")
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert settings.anonymous_read and settings.max_upload_bytes == 5 * 1024 * 1024


def test_field_sort_over_mixed_types_pages(api: Any) -> None:
    for i, name in enumerate(sorted(p.name for p in api.photos.iterdir())):
        api.patch(f"/v1/assets/{api.asset_id(name)}/meta", json={"sku": i if i % 2 else f"s{i}"})
    cursor, seen = None, []
    while True:
        response = api.post(
            "/v1/search", json={"filter": "kind:image", "sort": "meta.sku", "limit": 2, "cursor": cursor}
        )
        assert response.status_code == 200, response.text
        seen += [r["asset_id"] for r in response.json()["results"]]
        cursor = response.json()["next_cursor"]
        if not cursor:
            break
    assert len(set(seen)) == 8


def test_sorted_text_query_with_no_hit_in_the_filter(api: Any) -> None:
    body = {
        "text": "red sneaker",
        "filter": "region:(DE OR AT)",
        "sort": "created:desc",
        "min_relevance": 0.0,
    }
    response = api.post("/v1/search", json=body)
    assert response.status_code == 200 and response.json()["results"] == []


def _fuzz_value(rng: random.Random, depth: int = 0) -> Any:
    choices: list[Any] = [
        None,
        True,
        False,
        0,
        -1,
        1,
        2**63,
        -(2**70),
        1e308,
        -1e-308,
        0.5,
        "",
        " ",
        "a" * 5000,
        "%2e%2e/..",
        "kind:image",
        "kind:(",
        "created>=now-1d",
        '"unterminated',
        "tag:shoe>=abc",
        "\x00",
        "\U0001f600",
        "\ud800",
        '{"and": []}',
        "score",
        "created:desc",
        "meta.x:asc",
        "../../etc/passwd",
        "\U0001d518\U0001d52b\U0001d526",
    ]
    if depth < 3:
        choices += [
            [_fuzz_value(rng, depth + 1) for _ in range(rng.randint(0, 3))],
            {rng.choice(["field", "eq", "and", "not", "tag", "text", "x"]): _fuzz_value(rng, depth + 1)},
        ]
    return rng.choice(choices)


FUZZ_ROUTES = [
    (
        "POST",
        "/v1/search",
        [
            "text",
            "negative",
            "image_asset_id",
            "filter",
            "mode",
            "limit",
            "cursor",
            "min_relevance",
            "sort",
            "include",
        ],
    ),
    ("POST", "/v1/similar", ["asset_id", "filter", "limit", "cursor", "min_relevance", "include"]),
    ("PATCH", "/v1/assets/1/meta", ["campaign", "a.b", "bad name", "rating", "x"]),
    ("POST", "/v1/ingest", ["paths", "force", "prune", "transcribe"]),
    ("POST", "/v1/keys", ["scope", "name"]),
]
FUZZ_GETS = [
    "/v1/assets",
    "/v1/tags",
    "/v1/facets/{v}",
    "/v1/assets/{v}",
    "/v1/assets/1/thumbnail",
    "/v1/assets/1/transcript",
    "/v1/jobs/{v}",
]


def _text(value: Any) -> str:
    """A query-string value: URLs cannot carry unpaired surrogates."""
    return str(value)[:3000].encode("utf-8", "replace").decode()


def test_fuzzed_requests_never_get_a_500(api: Any) -> None:
    rng = random.Random(int(os.environ.get("FUZZ_SEED", "20240527")))
    for _ in range(int(os.environ.get("FUZZ_N", "400"))):
        if rng.random() < 0.6:
            method, url, fields = rng.choice(FUZZ_ROUTES)
            body = {f: _fuzz_value(rng) for f in rng.sample(fields, rng.randint(0, len(fields)))}
            if rng.random() < 0.1:
                body = _fuzz_value(rng)
            # ASCII JSON: lone surrogates travel as escapes, as a hostile client would send them.
            content = json.dumps(body).encode()
            headers = {**api.auth("admin"), "content-type": "application/json"}
            response = api.client.request(method, url, content=content, headers=headers)
        else:
            url = rng.choice(FUZZ_GETS).format(
                v=rng.choice(["1", "0", "-3", "99999999999999999999", "x", "%00"])
            )
            params = {
                k: _text(_fuzz_value(rng))
                for k in rng.sample(
                    ["filter", "limit", "cursor", "sort", "prefix", "size", "format", "by", "include"],
                    rng.randint(0, 4),
                )
            }
            response = api.client.get(url, params=params, headers=api.auth("read"))
        assert response.status_code < 500, (
            response.request.method,
            url,
            response.request.content,
            response.text,
        )
        if response.status_code >= 400:
            assert response.headers["content-type"].startswith("application/problem+json"), response.text
