"""The query engine on real libraries: filters, hybrid ranking, calibration, paging, sorting."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import ingester_for, open_library
from PIL import Image, ImageOps

from assetlens.search.errors import QueryError
from assetlens.search.filters import parse_filter
from assetlens.search.library import LibraryCore
from assetlens.search.paging import Cursor
from assetlens.search.query_types import Query, parse_text
from assetlens.search.store import Tag

TINY = "assetlens-tiny@random"


def test_parse_text_phrases_weights_and_negatives() -> None:
    positives, negatives = parse_text('red sneaker "white background"^2 -"blurry photo" -dark')
    assert positives == (("red sneaker", 1.0), ("white background", 2.0))
    assert negatives == (("blurry photo", 1.0), ("dark", 1.0))


def test_filter_restricts_results_and_is_explained(lib: LibraryCore, photos: Path) -> None:
    ingester_for(lib).ingest([photos])
    for name in ("cat.jpg", "coffee.jpg"):
        asset = lib.store.asset_by_uri(str(photos / name))
        assert asset is not None
        with lib.store.transaction():
            lib.store.update_asset(asset.id, {"meta": {"campaign": "spring", "region": ["DE", "AT"]}})

    page = lib.engine.search(
        Query(text=(("a photo", 1.0),), filter=parse_filter("campaign:spring region:DE"))
    )

    assert {Path(r.uri).name for r in page.results} == {"cat.jpg", "coffee.jpg"}
    expected = {"and": [{"field": "meta.campaign", "eq": "spring"}, {"field": "meta.region", "eq": "DE"}]}
    assert all(r.explanation["filter"] == expected for r in page.results)
    assert all(r.meta["campaign"] == "spring" for r in page.results)


def test_hybrid_finds_a_transcript_only_match(lib: LibraryCore, photos: Path) -> None:
    ingester_for(lib).ingest([photos])
    with lib.store.transaction():
        row = {"uri": "/voice/briefing.wav", "kind": "audio", "size": 1, "mtime": 0.0, "status": "ok"}
        audio = lib.store.upsert_asset(row)
        lib.store.replace_segments(audio, "faster-whisper:tiny.en", [
            {"start": 12.5, "end": 15.0, "text": "the zorblax launch is on Monday"}])  # fmt: skip

    hybrid = lib.engine.search(Query(text=(("zorblax launch", 1.0),)))
    semantic = lib.engine.search(Query(text=(("zorblax launch", 1.0),), mode="semantic"))
    lexical = lib.engine.search(Query(text=(("zorblax launch", 1.0),), mode="lexical"))

    # A phrase heard in the transcript outweighs pictures that a random CLIP ranks by chance.
    found = hybrid.results[0]
    assert found.asset_id == audio and found.match == "text"
    assert found.relevance is not None and found.relevance >= 0.9
    assert found.t == 12.5 and found.segment is not None and found.segment["text"].startswith("the zorblax")
    assert audio not in {r.asset_id for r in semantic.results}
    assert [r.asset_id for r in lexical.results] == [audio]


def test_lexical_matches_file_names_tags_and_meta(lib: LibraryCore, photos: Path) -> None:
    ingester_for(lib).ingest([photos])
    rocket = lib.store.asset_by_uri(str(photos / "rocket.jpg"))
    assert rocket is not None
    with lib.store.transaction():
        lib.store.update_asset(rocket.id, {"meta": {"product": "Saturn V launcher"}})
        lib.store.replace_tags(rocket.id, "user", [Tag("spacecraft", 1.0, "user")])

    by_name = lib.engine.search(Query(text=(("cat", 1.0),), mode="lexical"))
    by_meta = lib.engine.search(Query(text=(("saturn launcher", 1.0),), mode="lexical"))
    by_tag = lib.engine.search(Query(text=(("spacecraft", 1.0),), mode="lexical"))

    assert Path(by_name.results[0].uri).name == "cat.jpg"
    assert [r.asset_id for r in by_meta.results] == [rocket.id]
    assert by_meta.results[0].explanation["text_fields"] == ["meta.product"]
    assert [r.asset_id for r in by_tag.results] == [rocket.id] and by_tag.results[0].explanation["tags"] == [
        "spacecraft"
    ]


def test_negative_phrases_move_the_query_vector(lib: LibraryCore, photos: Path) -> None:
    ingester_for(lib).ingest([photos])
    pos, neg = lib.encoder.encode_texts(["a cat", "a dark photo"])
    expected = (pos - neg) / np.linalg.norm(pos - neg)

    page = lib.engine.search(
        Query(text=(("a cat", 1.0),), negative=(("a dark photo", 1.0),), mode="semantic")
    )

    for r in page.results:
        assert r.score == pytest.approx(float(lib.store.vectors_of(r.asset_id)[0][0] @ expected), abs=1e-5)


def _variants(folder: Path, count: int) -> None:
    """Distinct images made from the sample photos."""
    sources = sorted(p for p in folder.glob("*.jpg"))
    for i in range(count):
        with Image.open(sources[i % len(sources)]) as im:
            im = ImageOps.mirror(im) if i % 2 else im
            im.rotate(7 * i, expand=False).save(folder / f"variant-{i:02}.jpg", quality=85)


def test_paging_is_complete_and_stable_while_assets_are_added(
    lib: LibraryCore, photos: Path, tmp_path: Path
) -> None:
    _variants(photos, 24)
    ingester_for(lib).ingest([photos])
    anchor = lib.store.asset_by_uri(str(photos / "cat.jpg"))
    assert anchor is not None
    everything = [r.asset_id for r in lib.engine.search(Query(asset_id=anchor.id, limit=1000)).results]
    late = tmp_path / "late"
    late.mkdir()

    seen: list[int] = []
    cursor = None
    for page_number in range(100):
        page = lib.engine.search(Query(asset_id=anchor.id, limit=5, cursor=cursor))
        seen += [r.asset_id for r in page.results]
        cursor = page.next_cursor
        if cursor is None:
            break
        shutil.copy(photos / "cat.jpg", late / f"cat-{page_number}.jpg")  # exact copies: would rank first
        Image.open(photos / "rocket.jpg").rotate(page_number + 1).save(late / f"new-{page_number}.jpg")
        ingester_for(lib).ingest([late])

    assert seen == everything and len(seen) == len(set(seen)) == 31


def test_cursor_errors_are_clear(lib: LibraryCore, photos: Path) -> None:
    ingester_for(lib).ingest([photos])
    page = lib.engine.search(Query(text=(("a photo", 1.0),), limit=2))
    assert page.next_cursor is not None
    with pytest.raises(QueryError, match="another query"):
        lib.engine.search(Query(text=(("a dog", 1.0),), limit=2, cursor=page.next_cursor))
    for garbage in ("not-a-cursor", "eyJ4IjogMX0", "x" * 5000, page.next_cursor[:-3]):
        with pytest.raises(QueryError, match="cursor"):
            lib.engine.search(Query(text=(("a photo", 1.0),), limit=2, cursor=garbage))
    # Edited by hand (the CLI takes --cursor too): ids beyond SQLite's integers, NaN, a boolean,
    # text where scores are compared, a calibration that cannot be one. Refused by the engine,
    # not left to crash in SQLite or in the arithmetic.
    token = page.next_cursor
    _, key, asset_id, served, snapshot, digest, scale = json.loads(
        base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    )
    scale = tuple(scale)
    for edited in (
        Cursor(key, asset_id, served, 2**70, digest, scale),
        Cursor(key, -1, served, snapshot, digest, scale),
        Cursor(float("nan"), asset_id, served, snapshot, digest, scale),
        Cursor(True, asset_id, served, snapshot, digest, scale),
        Cursor("0.5", asset_id, served, snapshot, digest, scale),
        Cursor(key, asset_id, served, snapshot, digest, (scale[0], 0.0)),
        Cursor(key, asset_id, served, snapshot, digest, (float("inf"), scale[1])),
        Cursor(key, asset_id, served, snapshot, digest, ("mean", "std")),  # type: ignore[arg-type]
    ):
        with pytest.raises(QueryError, match="invalid cursor"):
            lib.engine.search(Query(text=(("a photo", 1.0),), limit=2, cursor=edited.encode()))


def test_filter_only_query_sorted_by_a_field_pages_in_order(lib: LibraryCore, photos: Path) -> None:
    ingester_for(lib).ingest([photos])
    for i, (asset_id, _) in enumerate(lib.store.uris()):
        with lib.store.transaction():
            lib.store.update_asset(asset_id, {"meta": {"sku": f"SKU-{(i * 5) % 8}"}})
    order: list[str] = []
    cursor = None
    while True:
        page = lib.engine.search(
            Query(filter=parse_filter("kind:image"), sort="meta.sku:asc", limit=3, cursor=cursor)
        )
        order += [r.meta["sku"] for r in page.results]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert order == sorted(order) and len(order) == 8
    with pytest.raises(QueryError, match="nothing to search"):
        lib.engine.search(Query(filter=parse_filter("kind:image")))
    with pytest.raises(QueryError, match="min_relevance"):
        lib.engine.search(Query(text=(("a cat", 1.0),), sort="created"))


def test_min_relevance_means_the_same_across_queries(tmp_path: Path) -> None:
    """Raw cosines cannot separate matches here; calibrated relevance can."""
    rng = np.random.default_rng(3)
    dim = 64
    common, target = np.eye(dim, dtype=np.float32)[0], np.eye(dim, dtype=np.float32)[1]
    lib = open_library(tmp_path / "data")
    store = lib.store

    def add(uri: str, vector: np.ndarray) -> int:
        with store.transaction():
            asset_id = store.upsert_asset(
                {"uri": uri, "kind": "image", "size": 1, "mtime": 0.0, "status": "ok"}
            )
            store.replace_vectors(asset_id, TINY, (vector / np.linalg.norm(vector))[None, :], [None])
        return asset_id

    # Every asset leans towards `common`: a query near it scores them all high (~0.8).
    for i in range(300):
        add(f"/lib/{i}.jpg", 2.0 * common + rng.normal(size=dim).astype(np.float32) * 0.3)
    planted = [
        add(f"/lib/match-{i}.jpg", 2.0 * common + 3.0 * target + rng.normal(size=dim) * 0.3) for i in range(5)
    ]
    near_target = add("/query/target.jpg", target)
    near_common = add("/query/common.jpg", common)

    matches = lib.engine.search(Query(asset_id=near_target, limit=400))
    ordinary = lib.engine.search(Query(asset_id=near_common, limit=400))

    best_ordinary = max(r.score for r in ordinary.results if r.score is not None)
    assert best_ordinary > max(r.score for r in matches.results if r.asset_id in planted)  # raw cut fails
    kept = lib.engine.search(Query(asset_id=near_target, limit=400, min_relevance=0.9))
    dropped = lib.engine.search(Query(asset_id=near_common, limit=400, min_relevance=0.9))
    assert {r.asset_id for r in kept.results} == set(planted)
    assert dropped.results == []
    lib.close()
