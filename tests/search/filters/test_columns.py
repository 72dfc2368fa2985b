"""The column cache evaluates filters exactly as SQL does, and follows the store's changes."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assetlens.search.errors import FilterError
from assetlens.search.filters import (
    And,
    Cmp,
    Filter,
    NearDuplicateOf,
    Not,
    Or,
    TagIs,
    TextMatch,
    compile_filter,
)
from assetlens.search.filters.columns import ColumnCache
from assetlens.search.filters.fields import FieldSchema
from assetlens.search.store import Store, Tag

NOW = datetime(2024, 6, 15, 12, 0, 0, tzinfo=UTC)
REGIONS = ["DE", "AT", "de", "FR", "Ch", " DE"]
DATES = [
    "2024-05-01", "2024-05-01T10:30:00Z", "2024-05-01T23:30:00-02:00", "2024-05", "2024", "2024-02-30",
    "not a date", "2024-05-01 08:00", "2023-12-31T23:59:59", "2024-06-14T12:00:00+00:00", "1999-01-01",
]  # fmt: skip
WORDS = ["yes", "No", " on ", "TRUE", "false", "off", "maybe", "1"]
SCHEMA = FieldSchema(
    {"priority": "number", "shoot": "date", "approved": "boolean", "keywords": "list", "sku": "string"}
)


def _value(rng: random.Random, field: str) -> Any:
    """A value of a meta field, in the many shapes real metadata takes."""
    roll = rng.random()
    if field == "region":
        return rng.choice([rng.choice(REGIONS), [rng.choice(REGIONS), rng.choice(REGIONS)], 5, None])
    if field == "priority":
        return rng.choice(
            [rng.randint(0, 100), rng.randint(0, 100) + 0.5, str(rng.randint(0, 100)), "4.2e1", "high"]
        )
    if field == "approved":
        return rng.choice([True, False, rng.choice(WORDS), 1, 0])
    if field == "shoot":
        return rng.choice(DATES) if roll < 0.9 else [rng.choice(DATES), rng.choice(DATES)]
    if field == "keywords":
        words = ["shoe", "red", "Shoe", "summer", "sale"]
        return rng.choice(
            [rng.sample(words, rng.randint(0, 3)), ["a", 3, True, None, ["nested"]], "shoe,red"]
        )
    if field == "camera":
        return {"make": rng.choice(["Canon", "Nikon", "canon"]), "model": rng.choice(["R5", "Z6", 7])}
    if field == "rating":
        return round(rng.uniform(0, 5), 2)
    if field == "sku":
        return rng.choice(["SKU-0012", "0012", "12", 12, "SKU-0999"])
    if field == "campaign":
        return rng.choice(["spring-24", "summer-24", ["spring-24", "fall-24"], "Spring-24"])
    return {"web": rng.choice([True, False]), "print": rng.choice(["yes", "no"])}  # channel


FIELDS = [
    "region",
    "priority",
    "approved",
    "shoot",
    "keywords",
    "camera",
    "rating",
    "sku",
    "campaign",
    "channel",
]


def add_assets(store: Store, rng: random.Random, start: int, count: int) -> list[int]:
    """Assets with every built-in column filled in odd ways, meta and embedded metadata, and tags."""
    ids = []
    with store.transaction():
        for i in range(start, start + count):
            ext = rng.choice(["jpg", "JPG", "png", "mp4", "wav", ""])
            meta = {f: _value(rng, f) for f in FIELDS if rng.random() < 0.5}
            embedded = {f: _value(rng, f) for f in FIELDS if rng.random() < 0.4}
            if rng.random() < 0.05:
                meta["region"] = None  # an explicit null hides the embedded value
            if rng.random() < 0.05:
                meta["odd key"] = "unaddressable"
            failed = rng.random() < 0.05
            aid = store.upsert_asset({
                "uri": f"/lib/{rng.choice(['a', 'b/c', 'd.e'])}/file{i}" + (f".{ext}" if ext else ""),
                "content_hash": None if failed else f"{rng.getrandbits(64):016x}",
                "kind": None if failed else rng.choice(["image", "video", "audio"]),
                "mime": rng.choice(["image/jpeg", "IMAGE/PNG", "video/mp4", None]),
                "size": rng.randint(0, 10_000_000), "mtime": rng.uniform(1.5e9, 1.75e9),
                "width": rng.choice([None, 0, 640, 1920, 4000]),
                "height": rng.choice([None, 0, 480, 1080, 3000]),
                "duration": rng.choice([None, 0.0, 12.5, 3600.0]),
                "created": rng.choice([None, *DATES, "2023-07-04T10:00:00+05:30"]),
                "ingested_at": f"2024-06-{rng.randint(1, 15):02d}T{rng.randint(0, 23):02d}:00:00Z",
                "status": "failed" if failed else "ok", "error": "decode failed" if failed else None,
                "meta": meta, "embedded": embedded,
                "media": {"has_audio": rng.random() < 0.5},
                "transcript_model": rng.choice([None, "tiny.en"]),
            })  # fmt: skip
            if ids and rng.random() < 0.05:
                store.update_asset(aid, {"duplicate_of": rng.choice(ids)})
            tags = {
                rng.choice(["Shoe", "shoe", "red", "SKY", "dog", "Straße"]) for _ in range(rng.randint(0, 3))
            }
            store.replace_tags(aid, "clip", [Tag(t, round(rng.uniform(0.1, 0.4), 3), "clip") for t in tags])
            if rng.random() < 0.2:
                store.replace_tags(aid, "user", [Tag("shoe", 1.0, "user")])
            ids.append(aid)
    return ids


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Store:
    store = Store(tmp_path_factory.mktemp("columns") / "a.db")
    ids = add_assets(store, random.Random(7), 0, 1500)
    with store.transaction():
        store.duplicates.set_groups(near_duplicate_groups(ids, random.Random(8)))
    return store


def near_duplicate_groups(ids: list[int], rng: random.Random) -> dict[int, int]:
    """Groups of 2 to 5 among a fifth of the assets: asset -> group (its first member)."""
    chosen = rng.sample(ids, len(ids) // 5)
    out: dict[int, int] = {}
    while len(chosen) >= 2:
        size = min(rng.randint(2, 5), len(chosen))
        members, chosen = chosen[:size], chosen[size:]
        out.update((m, members[0]) for m in members)
    return out


def atoms() -> list[Filter]:
    """Terms over every field, operator and kind of value."""
    out: list[Filter] = []
    values: dict[str, list[Any]] = {
        "region": ["DE", "de", "5", 5, " DE"],
        "priority": [42, "42", 42.5, "4.2e1", "high", 0],
        "approved": [True, False, "yes", "true"],
        "shoot": ["2024-05-01", "2024-05", "2024", "now-30d", "today", "2024-05-01T10:30", "1999"],
        "keywords": ["shoe", "Shoe", "3", 3, True, "shoe,red"],
        "camera": ["Canon", "7", 7], "camera.make": ["Canon", "canon", "C"], "camera.model": [7, "R5"],
        "rating": [2.5, "2.5", 0, 5], "sku": ["12", 12, "0012", "SKU"],
        "campaign": ["spring-24", "Spring-24"],
        "channel.web": [True, "yes"], "channel": ["yes", True], "missing": ["x", 1], "odd": ["unaddressable"],
    }  # fmt: skip
    for name, vals in values.items():
        field = f"meta.{name}"
        out.append(Cmp(field, "exists", True))
        out.append(Cmp(field, "in", tuple(vals[:3])))
        out.append(Cmp(field, "nin", tuple(vals[:2])))
        for v in vals:
            out.extend(Cmp(field, op, v) for op in ("eq", "ne", "gt", "gte", "lt", "lte"))
            if isinstance(v, str):
                out.append(Cmp(field, "prefix", v))
    builtins: dict[str, list[Any]] = {
        "id": [5, 700], "uri": ["/lib/a/file3.jpg", "/lib/b"], "filename": ["file3.jpg", "file1"],
        "folder": ["/lib/a", "/lib/b/c"], "ext": ["jpg", "JPG", "png"], "kind": ["image", "VIDEO"],
        "mime": ["image/jpeg", "IMAGE/PNG", "image"], "size": [5_000_000, "5000000"], "width": [640, 1920],
        "height": [0, 1080], "aspect": [1.7, 1], "orientation": ["landscape", "Square"],
        "duration": [12.5, 0], "created": ["2024-05-01", "2024", "now-1y", "2023-07-04T04:30"],
        "modified": ["2020", "now-2y"], "ingested_at": ["2024-06-10", "2024-06"],
        "ingest_status": ["ok", "FAILED"], "error": ["decode failed"], "duplicate_of": [3, 10],
        "duplicate": [True, "no"], "near_duplicate": [True, "no", 1], "content_hash": ["0", "ab"],
        "transcribed": [True],
        "has_audio": [True, False],
    }  # fmt: skip
    for name, vals in builtins.items():
        out.append(Cmp(name, "exists", True))
        out.append(Cmp(name, "in", tuple(vals)))
        out.append(Cmp(name, "nin", tuple(vals)))
        for v in vals:
            out.extend(Cmp(name, op, v) for op in ("eq", "ne", "gt", "gte", "lt", "lte", "prefix"))
    out += [NearDuplicateOf((a,)) for a in (1, 2, 5, 40, 99_999)]
    out += [NearDuplicateOf((3, 7, 11)), Not(NearDuplicateOf((5, 6)))]
    out += [
        TagIs("shoe"),
        TagIs("SHOE", 0.3),
        TagIs("sky", 0.2),
        TagIs("straße"),
        TagIs("STRASSE"),
        TagIs("none"),
    ]
    return out


def sql_ids(store: Store, f: Filter, schema: FieldSchema | None) -> set[int] | None:
    try:
        sql, params = compile_filter(f, schema=schema, now=NOW)
    except FilterError:
        return None  # both sides refuse it; the planner compiles first and reports the error
    return set(store.matching_asset_ids(sql, params).tolist())


def cache_ids(cache: ColumnCache, f: Filter, schema: FieldSchema | None) -> set[int]:
    mask = cache.evaluate(f, schema=schema, now=NOW)
    return set(cache.ids.view[mask].tolist())


@pytest.mark.parametrize("schema", [None, SCHEMA], ids=["undeclared", "schema"])
def test_every_term_matches_what_sql_matches(library: Store, schema: FieldSchema | None) -> None:
    cache = ColumnCache(library)
    checked = 0
    for f in atoms():
        expected = sql_ids(library, f, schema)
        if expected is None:
            continue
        assert cache_ids(cache, f, schema) == expected, f
        checked += 1
    assert checked > 400
    assert not [f for f in cache.columns.values() if not f.supported]


def test_nested_and_or_not_match_sql(library: Store) -> None:
    rng = random.Random(3)
    pool = [f for f in atoms() if sql_ids(library, f, None) is not None]
    cache = ColumnCache(library)

    def tree(depth: int) -> Filter:
        if depth == 0 or rng.random() < 0.3:
            return rng.choice(pool)
        roll = rng.random()
        if roll < 0.2:
            return Not(tree(depth - 1))
        items = tuple(tree(depth - 1) for _ in range(rng.randint(2, 3)))
        return And(items) if roll < 0.6 else Or(items)

    for _ in range(150):
        f = tree(3)
        assert cache_ids(cache, f, None) == sql_ids(library, f, None), f


def test_full_text_goes_to_sqlite_and_is_combined(library: Store) -> None:
    cache = ColumnCache(library)
    f = And((TextMatch("spring"), Not(Cmp("kind", "eq", "audio"))))
    assert cache_ids(cache, f, None) == sql_ids(library, f, None) != set()
    assert cache.fallbacks == ["TextMatch"]


def test_changes_are_seen_after_a_refresh_and_not_before(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    rng = random.Random(11)
    ids = add_assets(store, rng, 0, 300)
    clock = [0.0]
    cache = ColumnCache(store, refresh_seconds=2.0, clock=lambda: clock[0])
    region, tagged = Cmp("meta.region", "eq", "DE"), TagIs("shoe", 0.2)
    for f in (region, tagged, Cmp("id", "exists", True)):
        cache.evaluate(f)  # the columns are built: changes must patch them

    with store.transaction():
        store.set_meta(ids[0], {"region": "DE"})
        store.set_meta(ids[1], {"region": "XX"})
        store.delete_asset(ids[2])
        store.replace_tags(ids[3], "clip", [Tag("SHOE", 0.9, "clip")])
    new = add_assets(store, rng, 1000, 50)
    clock[0] = 1.0
    assert not cache.refresh()  # within refresh_seconds: the cache stays as it was
    assert ids[2] in cache_ids(cache, Cmp("id", "eq", ids[2]), None)

    clock[0] = 2.5
    assert cache.refresh()
    for f in (region, tagged, Cmp("id", "in", (ids[2], new[0])), Not(region)):
        assert cache_ids(cache, f, None) == sql_ids(store, f, None), f
    assert ids[0] in cache_ids(cache, region, None) and ids[1] not in cache_ids(cache, region, None)
    assert cache.rows == 300 + 50 and not cache.refresh(force=True)


def test_a_mass_change_rebuilds_and_sparse_ids_still_map(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    ids = add_assets(store, random.Random(5), 0, 200)
    cache = ColumnCache(store)
    assert cache.evaluate(Cmp("kind", "exists", True)).sum() == len(
        sql_ids(store, Cmp("kind", "exists", True), None) or ()
    )
    with store.transaction():
        for aid in ids[:150]:
            store.delete_asset(aid)
    assert cache.refresh(force=True)
    assert set(cache.ids.view[cache.evaluate(None)].tolist()) == set(ids[150:])
    assert np.all(cache.rows_of(np.array([-5, 10**9])) == -1)
    assert cache.memory_bytes() > 0


def test_near_duplicate_groups_changing_are_seen_after_a_refresh(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    ids = add_assets(store, random.Random(5), 0, 50)
    cache = ColumnCache(store)
    grouped = Cmp("near_duplicate", "eq", True)
    one = NearDuplicateOf((ids[0],))

    def agree() -> set[int]:
        cache.refresh(force=True)
        for f in (grouped, one, Not(grouped)):
            assert cache_ids(cache, f, None) == sql_ids(store, f, None), f
        return cache_ids(cache, grouped, None)

    assert agree() == set()
    with store.transaction():
        store.duplicates.set_groups({ids[0]: ids[0], ids[1]: ids[0], ids[2]: ids[0]})
    assert agree() == set(ids[:3])
    with store.transaction():
        store.delete_asset(ids[1])
    assert agree() == {ids[0], ids[2]}
    with store.transaction():
        store.delete_asset(ids[2])  # one left is no group: it leaves too
    assert agree() == set()
