"""Assets: listing, detail, meta edits, deletion, thumbnails, keyframes, transcripts, tags, facets."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from assetlens.search.catalog.meta import declare_fields

SEGMENTS = [
    {"start": 0.0, "end": 2.5, "text": " Welcome to the spring collection.", "language": "en"},
    {"start": 2.5, "end": 5.25, "text": " Red sneakers are back.", "language": "en"},
]


def _audio_asset(api: Any, transcript: bool = True) -> int:
    store = api.lib.store
    with store.transaction():
        asset = store.upsert_asset(
            {
                "uri": str(api.photos / "voice.wav"),
                "kind": "audio",
                "size": 10,
                "mtime": 0.0,
                "status": "ok",
                "content_hash": "ab" * 16,
            }
        )
        if transcript:
            store.replace_segments(asset, "faster-whisper:tiny.en", SEGMENTS)
    return asset


def test_listing_sorts_by_created_newest_first_and_pages(api: Any) -> None:
    seen, cursor = [], None
    while True:
        response = api.get("/v1/assets", params={"limit": 3, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        doc = response.json()
        seen += doc["results"]
        cursor = doc["next_cursor"]
        if not cursor:
            break
    assert len({r["asset_id"] for r in seen}) == 8
    created = [api.lib.store.asset(r["asset_id"]).created or "" for r in seen]
    assert created == sorted(created, reverse=True)


def test_listing_with_filter_and_sort(api: Any, problem: Any) -> None:
    cat, clock = api.asset_id("cat.jpg"), api.asset_id("clock.jpg")
    api.patch(f"/v1/assets/{cat}/meta", json={"rating": 2})
    api.patch(f"/v1/assets/{clock}/meta", json={"rating": 5})
    doc = api.get("/v1/assets", params={"filter": "rating>=1", "sort": "meta.rating:asc"}).json()
    assert [r["asset_id"] for r in doc["results"]] == [cat, clock]
    assert doc["results"][0]["meta"] == {"rating": 2}
    problem(api.get("/v1/assets", params={"filter": "rating>="}), 400)
    problem(api.get("/v1/assets", params={"limit": 1000}), 422)


def test_asset_detail(api: Any, problem: Any) -> None:
    cat = api.asset_id("cat.jpg")
    doc = api.get(f"/v1/assets/{cat}").json()
    assert doc["id"] == cat and doc["kind"] == "image" and doc["uri"].endswith("cat.jpg")
    assert doc["width"] > 0 and doc["tags"] and {"tag", "score", "source", "t"} <= set(doc["tags"][0])
    assert doc["transcript"] == [] and isinstance(doc["exif"], dict) and isinstance(doc["media"], dict)
    problem(api.get("/v1/assets/999999"), 404)
    problem(api.get("/v1/assets/0"), 422)
    problem(api.get(f"/v1/assets/{2**64}"), 422)
    problem(api.get("/v1/assets/abc"), 422)


def test_patch_meta_sets_merges_and_removes(api: Any) -> None:
    cat = api.asset_id("cat.jpg")
    url = f"/v1/assets/{cat}/meta"
    first = api.patch(url, json={"campaign": "spring", "sku": "00123", "rights": {"region": ["DE", "AT"]}})
    assert first.status_code == 200
    assert first.json() == {
        "asset_id": cat,
        "meta": {"campaign": "spring", "sku": "00123", "rights": {"region": ["DE", "AT"]}},
    }
    second = api.patch(url, json={"rights.expires": "2026-12-31", "campaign": None, "sku": None})
    assert second.json()["meta"] == {"rights": {"region": ["DE", "AT"], "expires": "2026-12-31"}}
    third = api.patch(url, json={"rights": {"region": None, "expires": None}})
    assert third.json()["meta"] == {}
    assert api.get(f"/v1/assets/{cat}").json()["meta"] == {}


def test_patch_meta_enforces_declared_types(api: Any, problem: Any) -> None:
    cat = api.asset_id("cat.jpg")
    with api.lib.store.transaction():
        declare_fields(api.lib.store, {"rating": "number", "expires": "date"})
    body = problem(api.patch(f"/v1/assets/{cat}/meta", json={"rating": "five", "campaign": "x"}), 422)
    assert body["field"] == "meta.rating" and body["expected"] == "number"
    assert api.lib.store.meta_of(cat) == {}  # nothing written
    assert api.patch(f"/v1/assets/{cat}/meta", json={"rating": "4", "expires": "2027-01-01"}).json()[
        "meta"
    ] == {"rating": 4, "expires": "2027-01-01"}
    problem(api.patch(f"/v1/assets/{cat}/meta", json={"bad name!": 1}), 422)
    problem(api.patch(f"/v1/assets/{cat}/meta", json=["not", "an", "object"]), 422)
    problem(api.patch("/v1/assets/999999/meta", json={"a": 1}), 404)


def test_delete_removes_the_asset_not_the_file(api: Any, problem: Any) -> None:
    cat = api.asset_id("cat.jpg")
    assert api.delete(f"/v1/assets/{cat}").status_code == 204
    problem(api.get(f"/v1/assets/{cat}"), 404)
    problem(api.delete(f"/v1/assets/{cat}"), 404)
    assert (api.photos / "cat.jpg").exists()
    results = api.post("/v1/search", json={"text": "a cat", "mode": "semantic", "limit": 20}).json()[
        "results"
    ]
    assert cat not in [r["asset_id"] for r in results] and len(results) == 7


def test_thumbnail_is_a_cached_jpeg(api: Any, problem: Any) -> None:
    cat = api.asset_id("cat.jpg")
    first = api.get(f"/v1/assets/{cat}/thumbnail", params={"size": 64})
    assert first.status_code == 200 and first.headers["content-type"] == "image/jpeg"
    assert first.headers["x-thumbnail-cache"] == "miss" and "max-age" in first.headers["cache-control"]
    picture = Image.open(io.BytesIO(first.content))
    assert picture.format == "JPEG" and max(picture.size) == 64
    again = api.get(f"/v1/assets/{cat}/thumbnail", params={"size": 64})
    assert again.headers["x-thumbnail-cache"] == "hit" and again.content == first.content
    etag = first.headers["etag"]
    assert (
        api.get(
            f"/v1/assets/{cat}/thumbnail", params={"size": 64}, headers={"If-None-Match": etag}
        ).status_code
        == 304
    )
    default = Image.open(io.BytesIO(api.get(f"/v1/assets/{cat}/thumbnail").content))
    assert max(default.size) == 256
    assert list((api.lib.settings.data_dir / "thumbs").rglob("*.jpg"))
    for size in (16, 2048, "big"):
        problem(api.get(f"/v1/assets/{cat}/thumbnail", params={"size": size}), 422)


def test_thumbnail_problems(api: Any, problem: Any) -> None:
    audio = _audio_asset(api)
    assert "no picture" in problem(api.get(f"/v1/assets/{audio}/thumbnail"), 404)["title"].lower()
    clock = api.asset_id("clock.jpg")
    (api.photos / "clock.jpg").unlink()
    assert "gone" in problem(api.get(f"/v1/assets/{clock}/thumbnail"), 404)["detail"]
    problem(api.get("/v1/assets/999999/thumbnail"), 404)


@pytest.mark.slow
def test_video_thumbnail_is_the_poster_frame(api: Any, tmp_path: Path) -> None:
    from helpers import ingester_for

    videos = tmp_path / "videos"
    videos.mkdir()
    source = Path(__file__).parents[2] / "data" / "videos" / "bikes.mp4"
    (videos / "bikes.mp4").write_bytes(source.read_bytes())
    ingester_for(api.lib).ingest([videos])
    asset = api.lib.store.asset_by_uri(str(videos / "bikes.mp4"))
    assert asset is not None and asset.kind == "video"
    response = api.get(f"/v1/assets/{asset.id}/thumbnail", params={"size": 128})
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(response.content)).size) == 128
    frames = api.get(f"/v1/assets/{asset.id}/keyframes").json()
    assert len(frames["keyframes"]) >= 1 and frames["poster_t"] in [k["t"] for k in frames["keyframes"]]
    times = [k["t"] for k in frames["keyframes"]]
    assert times == sorted(times) and all(t is not None for t in times)


def test_keyframes_of_a_still(api: Any, problem: Any) -> None:
    cat = api.asset_id("cat.jpg")
    doc = api.get(f"/v1/assets/{cat}/keyframes").json()
    assert doc["asset_id"] == cat and len(doc["keyframes"]) == 1
    frame = doc["keyframes"][0]
    assert frame["t"] is None and frame["vector_id"] >= 1 and frame["tags"]
    problem(api.get("/v1/assets/999999/keyframes"), 404)


@pytest.mark.parametrize(
    ("fmt", "content_type", "start"),
    [
        ("json", "application/json", '{\n  "segments"'),
        ("srt", "text/plain", "1\n00:00:00,000 --> 00:00:02,500\nWelcome"),
        ("vtt", "text/vtt", "WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nWelcome"),
        ("txt", "text/plain", "Welcome to the spring collection.\nRed"),
    ],
)
def test_transcript_formats(api: Any, fmt: str, content_type: str, start: str) -> None:
    audio = _audio_asset(api)
    response = api.get(f"/v1/assets/{audio}/transcript", params={"format": fmt})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(content_type)
    assert response.text.startswith(start)
    if fmt == "json":
        assert [s["end"] for s in response.json()["segments"]] == [2.5, 5.25]


def test_transcript_problems(api: Any, problem: Any) -> None:
    assert (
        "no transcript" in problem(api.get(f"/v1/assets/{api.asset_id('cat.jpg')}/transcript"), 404)["detail"]
    )
    problem(api.get(f"/v1/assets/{_audio_asset(api)}/transcript", params={"format": "doc"}), 422)


def test_search_finds_speech_and_includes_the_transcript(api: Any) -> None:
    audio = _audio_asset(api)
    doc = api.post("/v1/search", json={"text": "spring collection", "include": ["transcript", "meta"]}).json()
    hit = next(r for r in doc["results"] if r["asset_id"] == audio)
    assert hit["segment"]["text"].strip().startswith("Welcome") and hit["t"] == 0.0
    assert [s["text"] for s in hit["transcript"]] == [s["text"] for s in SEGMENTS]


def test_tags_with_counts_and_prefix(api: Any) -> None:
    tags = api.get("/v1/tags", params={"limit": 5}).json()["tags"]
    assert 0 < len(tags) <= 5 and all(t["count"] >= 1 for t in tags)
    counts = [t["count"] for t in tags]
    assert counts == sorted(counts, reverse=True)
    prefix = tags[0]["tag"][:2]
    filtered = api.get("/v1/tags", params={"prefix": prefix.upper()}).json()["tags"]
    assert filtered and all(t["tag"].lower().startswith(prefix.lower()) for t in filtered)
    assert api.get("/v1/tags", params={"prefix": "%_"}).json()["tags"] == []


def test_facets(api: Any, problem: Any) -> None:
    cat = api.asset_id("cat.jpg")
    api.patch(f"/v1/assets/{cat}/meta", json={"region": ["DE", "AT"]})
    assert api.get("/v1/facets/kind").json() == {"field": "kind", "values": [{"value": "image", "count": 8}]}
    region = api.get("/v1/facets/region", params={"filter": "kind:image"}).json()["values"]
    assert {v["value"] for v in region} == {"DE", "AT"}
    assert api.get("/v1/facets/tag", params={"limit": 3}).json()["values"]
    assert "created" in api.get("/v1/facets/created", params={"by": "year"}).json()["field"]
    problem(api.get("/v1/facets/bad name!"), 400)
    problem(api.get("/v1/facets/kind", params={"filter": "kind:("}), 400)
    problem(api.get("/v1/facets/kind", params={"by": "year"}), 400)
