"""POST /v1/search and /v1/similar: results, filters, cursors, uploads, limits, micro-batching."""

from __future__ import annotations

import asyncio
import io
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from assetlens.search.api.batcher import TextBatcher
from assetlens.search.library import LibraryCore


def test_search_returns_results_with_scores_tags_and_explanations(api: Any) -> None:
    response = api.post("/v1/search", json={"text": "a photo of a cat", "mode": "semantic", "limit": 5})
    assert response.status_code == 200
    doc = response.json()
    assert len(doc["results"]) == 5 and doc["next_cursor"] and doc["took_ms"] >= 0
    first = doc["results"][0]
    assert {"asset_id", "uri", "kind", "score", "relevance", "t", "tags", "explanation", "meta"} <= set(first)
    assert first["kind"] == "image" and isinstance(first["score"], float) and 0 <= first["relevance"] <= 1
    assert "visual" in first["explanation"] and first["transcript"] is None
    scores = [r["score"] for r in doc["results"]]
    assert scores == sorted(scores, reverse=True)


def test_include_selects_the_optional_parts(api: Any) -> None:
    doc = api.post("/v1/search", json={"text": "cat", "include": ["transcript"], "mode": "semantic"}).json()
    first = doc["results"][0]
    assert first["tags"] is None and first["meta"] is None and first["explanation"] is None
    assert first["transcript"] == []


def test_text_syntax_and_negative_phrases_change_the_query(api: Any) -> None:
    plain = api.post("/v1/search", json={"text": "rocket", "mode": "semantic", "limit": 8}).json()
    negated = api.post(
        "/v1/search", json={"text": "rocket", "negative": ["a cat"], "mode": "semantic", "limit": 8}
    ).json()
    syntax = api.post("/v1/search", json={"text": 'rocket -"a cat"', "mode": "semantic", "limit": 8}).json()
    assert [r["score"] for r in negated["results"]] != [r["score"] for r in plain["results"]]
    assert [r["asset_id"] for r in syntax["results"]] == [r["asset_id"] for r in negated["results"]]


@pytest.mark.parametrize(
    "flt",
    [
        "kind:image campaign:spring",
        {"and": [{"field": "kind", "eq": "image"}, {"field": "meta.campaign", "eq": "spring"}]},
    ],
)
def test_filters_in_both_syntaxes(api: Any, flt: Any) -> None:
    cat = api.asset_id("cat.jpg")
    assert api.patch(f"/v1/assets/{cat}/meta", json={"campaign": "spring"}).status_code == 200
    doc = api.post("/v1/search", json={"text": "anything", "filter": flt}).json()
    assert [r["asset_id"] for r in doc["results"]] == [cat]
    assert doc["results"][0]["explanation"]["filter"]["and"][1] == {"field": "meta.campaign", "eq": "spring"}


def test_pooled_sessions_share_one_filter_cache(api: Any) -> None:
    # Built once and held once for the whole API, not once per pooled connection.
    state = api.client.app.state.api
    with state.pool.session() as first, state.pool.session() as second:
        assert first is not second
        assert first.engine.vectors.planner.columns is second.engine.vectors.planner.columns is state.columns
    cat = api.asset_id("cat.jpg")
    assert api.patch(f"/v1/assets/{cat}/meta", json={"campaign": "autumn"}).status_code == 200
    with ThreadPoolExecutor(6) as pool:  # concurrent requests: several sessions at once
        docs = list(
            pool.map(
                lambda _: api.post("/v1/search", json={"text": "x", "filter": "campaign:autumn"}), range(12)
            )
        )
    assert all(d.status_code == 200 for d in docs)
    assert all([r["asset_id"] for r in d.json()["results"]] == [cat] for d in docs)
    assert "meta.campaign" in state.columns.columns  # the one cache holds the column


@pytest.mark.parametrize(
    ("flt", "status", "position"),
    [("kind:image region:(DE OR", 400, 24), ("created>=notadate", 422, 9), ('{"and": 3}', 400, None)],
)
def test_bad_filters_are_problems_with_the_position(
    api: Any, problem: Any, flt: str, status: int, position: int | None
) -> None:
    body = problem(api.post("/v1/search", json={"text": "x", "filter": flt}), status)
    assert body.get("position") == position
    if position is not None:
        assert f"column {position + 1}" in body["detail"]
    else:
        assert body["path"] == "$.and" and "$.and" in body["detail"]


def test_cursor_pages_through_every_result_once(api: Any) -> None:
    seen: list[int] = []
    cursor = None
    for _ in range(10):
        doc = api.post("/v1/search", json={"text": "a photo", "limit": 3, "cursor": cursor}).json()
        seen += [r["asset_id"] for r in doc["results"]]
        cursor = doc["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 8


@pytest.mark.parametrize("cursor", ["garbage", "!!!", "W10", "x" * 3000, "WzEsImEiLDEsMSwxLCJ4Il0"])
def test_garbage_cursor_is_400(api: Any, problem: Any, cursor: str) -> None:
    response = api.post("/v1/search", json={"text": "a photo", "cursor": cursor})
    assert response.status_code in (400, 422)
    problem(response, response.status_code)


def test_cursor_of_another_query_is_400(api: Any, problem: Any) -> None:
    cursor = api.post("/v1/search", json={"text": "a photo", "limit": 2}).json()["next_cursor"]
    body = problem(api.post("/v1/search", json={"text": "a dog", "limit": 2, "cursor": cursor}), 400)
    assert "another query" in body["detail"]


@pytest.mark.parametrize(
    "body",
    [
        {"text": "x", "limit": 0},
        {"text": "x", "limit": 101},
        {"text": "x", "min_relevance": 2},
        {"text": "x", "mode": "fuzzy"},
        {"text": "x", "include": ["secrets"]},
        {"text": "x", "unknown": 1},
        {"image_asset_id": 2**70},
        {"text": ["not", "a", "string"]},
    ],
)
def test_invalid_requests_are_422_problems(api: Any, problem: Any, body: dict[str, Any]) -> None:
    doc = problem(api.post("/v1/search", json=body), 422)
    assert doc["errors"] and doc["errors"][0]["loc"][0] == "body"


def test_server_page_cap(make_api: Any, problem: Any) -> None:
    api = make_api(max_page_size=5)
    assert "at most 5" in problem(api.post("/v1/search", json={"text": "x", "limit": 6}), 422)["detail"]


def test_nothing_to_search_for_is_400(api: Any, problem: Any) -> None:
    assert "nothing to search for" in problem(api.post("/v1/search", json={}), 400)["detail"]


def test_bad_sort_is_400(api: Any, problem: Any) -> None:
    problem(api.post("/v1/search", json={"filter": "kind:image", "sort": "meta.x'; DROP TABLE assets"}), 400)


def test_similar_by_asset_excludes_it(api: Any, problem: Any) -> None:
    cat = api.asset_id("cat.jpg")
    doc = api.post("/v1/similar", json={"asset_id": cat, "limit": 20}).json()
    assert len(doc["results"]) == 7 and cat not in [r["asset_id"] for r in doc["results"]]
    problem(api.post("/v1/similar", json={"asset_id": 999999}), 404)
    problem(api.post("/v1/similar", json={"asset_id": "cat"}), 422)
    problem(api.post("/v1/similar", content=b"{not json", headers={"content-type": "application/json"}), 422)
    problem(api.post("/v1/similar", content=b"asset_id=1", headers={"content-type": "text/plain"}), 415)


def _jpeg(size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, "JPEG")
    return out.getvalue()


def test_similar_by_upload_pages_with_a_cursor(api: Any, photos: Path) -> None:
    data = (photos / "rocket.jpg").read_bytes()
    first = api.post("/v1/similar", files={"file": ("r.jpg", data, "image/jpeg")}, data={"limit": "5"})
    assert first.status_code == 200, first.text
    doc = first.json()
    assert len(doc["results"]) == 5 and doc["next_cursor"]
    # The query picture is the ingested rocket: it is the best match.
    assert doc["results"][0]["asset_id"] == api.asset_id("rocket.jpg")
    more = api.post(
        "/v1/similar",
        files={"file": ("r.jpg", data, "image/jpeg")},
        data={"limit": "5", "cursor": doc["next_cursor"], "filter": "kind:image"},
    )
    assert more.status_code == 400  # the filter is part of the query: another query, another cursor
    more = api.post(
        "/v1/similar",
        files={"file": ("r.jpg", data, "image/jpeg")},
        data={"limit": "5", "cursor": doc["next_cursor"]},
    )
    ids = [r["asset_id"] for r in doc["results"] + more.json()["results"]]
    assert len(ids) == len(set(ids)) == 8


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b"this is not an image at all", "not a readable image"),
        (_jpeg()[:200], "not a readable image"),  # truncated
        (b"", "empty"),
    ],
)
def test_unusable_uploads_are_422(api: Any, problem: Any, content: bytes, detail: str) -> None:
    response = api.post("/v1/similar", files={"file": ("x.jpg", content, "image/jpeg")})
    assert detail in problem(response, 422)["detail"]


def test_too_many_pixels_is_422(make_api: Any, problem: Any) -> None:
    api = make_api(max_pixels=1000)
    response = api.post("/v1/similar", files={"file": ("big.jpg", _jpeg((100, 100)), "image/jpeg")})
    assert "exceeds 1000 pixels" in problem(response, 422)["detail"]


def test_oversized_upload_is_413(make_api: Any, problem: Any) -> None:
    api = make_api(max_upload_mb=0.01)
    noise = np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(noise).save(out, "PNG")
    response = api.post("/v1/similar", files={"file": ("big.png", out.getvalue(), "image/png")})
    assert "ASSETLENS_API_MAX_UPLOAD_MB" in problem(response, 413)["detail"]


def test_upload_without_a_file_field_is_422(api: Any, problem: Any) -> None:
    problem(api.post("/v1/similar", files={"other": ("x.jpg", _jpeg(), "image/jpeg")}), 422)
    problem(
        api.post("/v1/similar", files={"file": ("x.jpg", _jpeg(), "image/jpeg")}, data={"limit": "0"}), 422
    )


def test_concurrent_texts_are_encoded_in_one_batch(lib: LibraryCore) -> None:
    batcher = TextBatcher(lib.encoder.encode_texts, window_s=0.05, max_batch=64)
    texts = [f"query number {i}" for i in range(8)]

    async def many() -> list[np.ndarray]:
        return await asyncio.gather(*(batcher.encode([t, "shared phrase"]) for t in texts))

    vectors = asyncio.run(many())
    assert batcher.batches == 1 and batcher.texts == 9
    for text, got in zip(texts, vectors, strict=True):
        np.testing.assert_allclose(got[0], lib.encoder.encode_texts([text])[0], atol=1e-6)
    full = TextBatcher(lib.encoder.encode_texts, window_s=10.0, max_batch=2)
    asyncio.run(asyncio.wait_for(full.encode(["a", "b"]), timeout=5))  # a full batch does not wait
    assert full.batches == 1


def test_concurrent_requests_share_the_pool_safely(make_api: Any) -> None:
    api = make_api(db_connections=3)
    cat = api.asset_id("cat.jpg")

    def work(i: int) -> list[int]:
        codes = []
        for j in range(4):
            codes.append(api.post("/v1/search", json={"text": f"query {i} {j}", "limit": 3}).status_code)
            codes.append(api.patch(f"/v1/assets/{cat}/meta", json={f"k{i}": j}).status_code)
            codes.append(api.post("/v1/similar", json={"asset_id": cat, "limit": 2}).status_code)
            codes.append(api.get("/v1/assets", params={"limit": 2}).status_code)
        return codes

    with ThreadPoolExecutor(max_workers=12) as pool:
        codes = [c for result in pool.map(work, range(12)) for c in result]
    assert set(codes) == {200}
    assert api.lib.store.meta_of(cat) == {f"k{i}": 3 for i in range(12)}
    metrics = api.client.get("/metrics").text
    batches = int(re.search(r"^assetlens_text_batches_total (\d+)", metrics, re.M).group(1))
    assert 1 <= batches <= 48


def test_search_by_a_raw_vector_finds_the_asset_it_came_from(api: Any, problem: Any) -> None:
    cat = api.asset_id("cat.jpg")
    stored, _ = api.lib.store.vectors_of(cat)
    vector = (stored[0] * 3.0).tolist()  # not unit length: the engine normalises it

    doc = api.post("/v1/search", json={"vector": vector, "limit": 3, "filter": "kind:image"}).json()

    assert doc["results"][0]["asset_id"] == cat and doc["results"][0]["score"] == pytest.approx(1.0, abs=1e-3)
    dim = len(vector)
    assert (
        f"has {dim + 1} values"
        in problem(api.post("/v1/search", json={"vector": [*vector, 0.5]}), 422)["detail"]
    )
    assert "all zeros" in problem(api.post("/v1/search", json={"vector": [0.0] * dim}), 422)["detail"]
    nan = b'{"vector": [NaN' + b", 0.1" * (dim - 1) + b"]}"
    problem(api.post("/v1/search", content=nan, headers={"content-type": "application/json"}), 422)
    problem(api.post("/v1/search", json={"vector": ["a", "b"]}), 422)
    problem(api.post("/v1/search", json={"vector": []}), 422)
