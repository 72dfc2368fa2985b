"""Filters on a real SQLite store: both syntaxes, the same AST, the same rows as a Python predicate."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from search.errors import FieldTypeError, FilterError, QueryError
from search.fields import FieldSchema
from search.filters import (
    BUILTIN_FIELDS,
    And,
    Cmp,
    Filter,
    Not,
    Or,
    TagIs,
    TextMatch,
    compile_filter,
    fts_query,
    parse_filter,
    parse_json,
    parse_string,
    to_json,
)
from search.store import Asset, Store, Tag

NOW = datetime(2024, 6, 15, 12, 0, 0, tzinfo=UTC)
EVIL = "'; DROP TABLE assets; --"


def asset(uri: str, meta: dict[str, Any] | None = None, embedded: dict[str, Any] | None = None, *,
          tags: tuple[Tag, ...] = (), transcript: tuple[str, ...] = (),
          **columns: Any) -> dict[str, Any]:  # fmt: skip
    """One test asset: its columns, meta, embedded metadata, tags and transcript."""
    return {"uri": uri, "meta": meta or {}, "embedded": embedded or {}, "tags": tags,
            "transcript": transcript, "columns": {"kind": "image", **columns}}  # fmt: skip


ASSETS = [
    asset("/lib/photos/beach.jpg",
          {"region": "DE", "rights_expires": "2024-12-31", "status": "approved", "rating": 5,
           "keywords": ["summer", "beach"], "featured": True},
          {"camera": "Canon EOS 5D", "keywords": ["sea"], "title": "Beach day"},
          tags=(Tag("beach", 0.9, "clip"), Tag("shoe", 0.3, "clip")),
          size=1_000_000, width=4000, height=3000, created="2024-05-01T10:30:00Z", mime="image/jpeg"),
    asset("/lib/photos/shoe_red.PNG",
          {"region": "AT", "rights_expires": "2025-06-30", "status": "draft", "rating": 3, "keywords": "red",
           "campaign": "Spring Collection 2024"},
          tags=(Tag("shoe", 0.8, "user"), Tag("Red", 0.6, "clip")),
          mime="image/png", size=200_000, width=1000, height=1000, created="2024-05-01"),
    asset("/lib/videos/spring.mp4", {"region": "FR", "status": "approved", "rating": 4.5},
          tags=(Tag("beach", 0.4, "clip"),), transcript=("welcome to the spring collection", "thanks"),
          kind="video", mime="video/mp4", size=50_000_000, width=1920, height=1080, duration=12.5,
          created="2023-12-31T23:30:00-02:00", media={"has_audio": True}),
    asset("/lib/audio/interview.wav", {}, {"title": "Interview"},
          transcript=("the spring is coming", "a collection of thoughts"),
          kind="audio", mime="audio/wav", size=5_000_000, duration=300.0),
    asset("/lib/broken/bad.jpg", kind=None, size=10, status="failed", error="decode error"),
    asset("/lib/copy/beach copy.jpg", {"region": "DE"}, duplicate_of=1,
          size=1_000_000, width=4000, height=3000, created="2024-05-01T10:30:00Z", mime="image/jpeg"),
    asset("loose.jpg", {"rating": "4", "keywords": ["Summer"], "featured": "yes"},
          size=5000, width=300, height=600, created="2024-06-14T08:00:00Z", mime="image/jpeg"),
    asset("C:\\dam\\win.TIF", {"region": None}, {"region": "DE", "camera": "Nikon D850"},
          mime="image/tiff", size=7000, width=600, height=300, created="2022-01-01T00:00:00Z"),
    asset("/lib/photos/night.jpg",
          {"rights_expires": "2024-06-01T12:00:00+02:00", "featured": False, "camera": {"make": "Nikon"}},
          size=80_000, width=2000, height=1000, created="2024-06-01T12:00:00+02:00"),
    asset("/lib/photos/umlaut.jpg", {"title": "Ölfässer — Größe", "region": "CH"},
          size=90_000, created="2021"),
    asset("/lib/photos/evil.jpg", {"note": EVIL, "rating": 2}, {"keywords": ["summer"]},
          size=100, created="2024-02-29T00:00:00Z"),
    asset("/lib/videos/clip2.mov", {"status": "draft", "rights_expires": "2024-06-20"},
          kind="video", mime="video/quicktime", size=3_000_000, width=1080, height=1920, duration=8.0,
          created="2024-06-15T11:00:00Z", media={"has_audio": False}),
    asset("/lib/docs/scan.jpeg", {"rating": 1.5, "keywords": []},
          size=120_000, width=2480, height=3508, created="2024-03"),
    asset("/lib/photos/noext", {"title": ""}, size=1, created="2020-05-05"),
    asset("/lib/photos/a.tar.gz", {"code": "9"}, size=2),
    asset("/lib/photos/b.jpg", {"code": "10"}, size=3),
    asset("/lib/photos/c.jpg", {"shot": "2024-05-01"}, size=4),
    asset("/lib/photos/d.jpg", {"shot": "2024-05-01T23:59:59Z"}, size=5),
    asset("/lib/photos/e.jpg", {"shot": "2024-05-02T00:00:00Z"}, size=6),
    asset("/lib/photos/f.jpg", {"sku": 123}, size=7),
    asset("/lib/photos/g.jpg", {"sku": "00123"}, size=8),
]  # fmt: skip


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, list[Asset]]]:
    # The store's own triggers fill assets_fts (file name, tags, meta and embedded values).
    store = Store(Path(tmp_path_factory.mktemp("filters")) / "a.db")
    with store.transaction():
        for i, a in enumerate(ASSETS):
            values = {
                "uri": a["uri"],
                "mtime": 1_700_000_000.0 + i * 86_400,
                "status": "ok",
                "meta": a["meta"],
                "embedded": a["embedded"],
                "ingested_at": f"2024-06-{1 + i:02d}T00:00:00Z",
                **a["columns"],
            }
            asset_id = store.upsert_asset(values)
            for source in ("clip", "user"):
                store.replace_tags(asset_id, source, [t for t in a["tags"] if t.source == source])
            if a["transcript"]:
                segments = [
                    {"start": float(n), "end": n + 1.0, "text": t} for n, t in enumerate(a["transcript"])
                ]
                store.replace_segments(asset_id, "whisper", segments)
    assets = list(store.assets([r[0] for r in store.uris()]).values())
    yield store, assets
    store.close()


def ids(store: Store, f: Filter, schema: FieldSchema | None = None) -> set[int]:
    sql, params = compile_filter(f, schema=schema, now=NOW)
    return {r[0] for r in store.db.execute(f"SELECT a.id FROM assets a WHERE {sql}", params)}


# --- the plain-Python side -----------------------------------------------------------------------


def filename(a: Asset) -> str:
    return re.split(r"[/\\]", a.uri)[-1]


def elements(a: Asset, name: str) -> list[Any]:
    """The effective meta value as json_each sees it: user meta wins (even null), else embedded."""
    for source in (a.meta, a.embedded):
        value: Any = source
        for part in name.split("."):
            if not isinstance(value, dict) or part not in value:
                break
            value = value[part]
        else:
            return (
                value
                if isinstance(value, list)
                else list(value.values())
                if isinstance(value, dict)
                else [value]
            )
    return []


def moment(value: Any) -> datetime | None:
    if not isinstance(value, str) or not re.match(r"\d{4}(-\d\d)?(-\d\d)?", value):
        return None
    value = value + "-01-01" if len(value) == 4 else value + "-01" if len(value) == 7 else value
    when = datetime.fromisoformat(value)
    return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo else when


def number(e: Any) -> bool:
    return isinstance(e, int | float) and not isinstance(e, bool)


def meta_any(name: str, test: Callable[[Any], bool]) -> Callable[[Asset], bool]:
    return lambda a: any(test(e) for e in elements(a, name))


def meta_date(name: str, test: Callable[[datetime], bool]) -> Callable[[Asset], bool]:
    return meta_any(name, lambda e: (m := moment(e)) is not None and test(m))


def created(test: Callable[[datetime], bool]) -> Callable[[Asset], bool]:
    return lambda a: (m := moment(a.created)) is not None and test(m)


D = datetime
TRUTHY = ("true", "yes", "on")
CASES: list[tuple[str, dict[str, Any], Callable[[Asset], bool]]] = [
    ("kind:image", {"field": "kind", "eq": "image"}, lambda a: a.kind == "image"),
    ("kind:VIDEO", {"field": "kind", "eq": "VIDEO"}, lambda a: a.kind == "video"),
    ("kind!=image", {"field": "kind", "ne": "image"}, lambda a: a.kind != "image"),
    (
        "kind:(video OR audio)",
        {"field": "kind", "in": ["video", "audio"]},
        lambda a: a.kind in ("video", "audio"),
    ),
    (
        "kind!=(video OR audio)",
        {"field": "kind", "nin": ["video", "audio"]},
        lambda a: a.kind not in ("video", "audio"),
    ),
    ("size>100000", {"field": "size", "gt": "100000"}, lambda a: a.size > 100_000),
    ("size>=1000000", {"field": "size", "gte": "1000000"}, lambda a: a.size >= 1_000_000),
    ("size<100", {"field": "size", "lt": "100"}, lambda a: a.size < 100),
    ("size<=100", {"field": "size", "lte": "100"}, lambda a: a.size <= 100),
    (
        "duration>10.5",
        {"field": "duration", "gt": "10.5"},
        lambda a: a.duration is not None and a.duration > 10.5,
    ),
    ("width:*", {"field": "width", "exists": True}, lambda a: a.width is not None),
    ("width!=*", {"not": {"field": "width", "exists": True}}, lambda a: a.width is None),
    ("id:(1 OR 3)", {"field": "id", "in": ["1", "3"]}, lambda a: a.id in (1, 3)),
    ("filename:beach.jpg", {"field": "filename", "eq": "beach.jpg"}, lambda a: filename(a) == "beach.jpg"),
    ("filename:beach*", {"field": "filename", "prefix": "beach"}, lambda a: filename(a).startswith("beach")),
    (
        'filename:"beach copy.jpg"',
        {"field": "filename", "eq": "beach copy.jpg"},
        lambda a: filename(a) == "beach copy.jpg",
    ),
    ("filename:win.TIF", {"field": "filename", "eq": "win.TIF"}, lambda a: filename(a) == "win.TIF"),
    ("filename:loose.jpg", {"field": "filename", "eq": "loose.jpg"}, lambda a: a.uri == "loose.jpg"),
    (
        "ext:(jpg OR PNG)",
        {"field": "ext", "in": ["jpg", "PNG"]},
        lambda a: "." in filename(a) and filename(a).rsplit(".", 1)[1].lower() in ("jpg", "png"),
    ),
    ("ext!=*", {"not": {"field": "ext", "exists": True}}, lambda a: "." not in filename(a)),
    (
        "folder:/lib/photos",
        {"field": "folder", "eq": "/lib/photos"},
        lambda a: a.uri.rsplit("/", 1)[0] == "/lib/photos",
    ),
    (
        "uri:/lib/videos/*",
        {"field": "uri", "prefix": "/lib/videos/"},
        lambda a: a.uri.startswith("/lib/videos/"),
    ),
    ("mime:image/*", {"field": "mime", "prefix": "image/"}, lambda a: (a.mime or "").startswith("image/")),
    (
        "orientation:portrait",
        {"field": "orientation", "eq": "portrait"},
        lambda a: a.width is not None and a.height is not None and a.width < a.height,
    ),
    (
        "aspect>1.5",
        {"field": "aspect", "gt": "1.5"},
        lambda a: bool(a.width and a.height and a.width / a.height > 1.5),
    ),
    (
        "ingest_status:failed",
        {"field": "ingest_status", "eq": "failed"},
        lambda a: a.status == "failed",
    ),
    ("ingest_status:OK", {"field": "ingest_status", "eq": "OK"}, lambda a: a.status == "ok"),
    ("error:decode*", {"field": "error", "prefix": "decode"}, lambda a: (a.error or "").startswith("decode")),
    ("duplicate:true", {"field": "duplicate", "eq": "true"}, lambda a: a.duplicate_of is not None),
    ("duplicate_of:1", {"field": "duplicate_of", "eq": "1"}, lambda a: a.duplicate_of == 1),
    ("transcribed:yes", {"field": "transcribed", "eq": "yes"}, lambda a: a.transcript_model is not None),
    (
        "has_audio:true",
        {"field": "has_audio", "eq": "true"},
        lambda a: a.kind == "audio" or (a.kind == "video" and a.media.get("has_audio") is True),
    ),
    ("created>=2024-05-01", {"field": "created", "gte": "2024-05-01"}, created(lambda m: m >= D(2024, 5, 1))),
    ("created<=2024-05-01", {"field": "created", "lte": "2024-05-01"}, created(lambda m: m < D(2024, 5, 2))),
    ("created>2024-05-01", {"field": "created", "gt": "2024-05-01"}, created(lambda m: m >= D(2024, 5, 2))),
    ("created<2024-05-01", {"field": "created", "lt": "2024-05-01"}, created(lambda m: m < D(2024, 5, 1))),
    (
        "created:2024-05-01",
        {"field": "created", "eq": "2024-05-01"},
        created(lambda m: D(2024, 5, 1) <= m < D(2024, 5, 2)),
    ),
    ("created:2024", {"field": "created", "eq": "2024"}, created(lambda m: m.year == 2024)),
    (
        "created:2024-03",
        {"field": "created", "eq": "2024-03"},
        created(lambda m: (m.year, m.month) == (2024, 3)),
    ),
    (
        "created:2024-01-01T01:30:00Z",
        {"field": "created", "eq": "2024-01-01T01:30:00Z"},
        created(lambda m: m == D(2024, 1, 1, 1, 30)),
    ),
    (
        "created>now-30d",
        {"field": "created", "gt": "now-30d"},
        created(lambda m: m > D(2024, 6, 15, 12) - timedelta(days=30)),
    ),
    ("created>=today-1d", {"field": "created", "gte": "today-1d"}, created(lambda m: m >= D(2024, 6, 14))),
    ("created<now-1y", {"field": "created", "lt": "now-1y"}, created(lambda m: m < D(2023, 6, 15, 12))),
    ("created:*", {"field": "created", "exists": True}, lambda a: a.created is not None),
    (
        "created:2024-05*",
        {"field": "created", "prefix": "2024-05"},
        lambda a: (a.created or "").startswith("2024-05"),
    ),
    (
        "modified>=2023-12-01",
        {"field": "modified", "gte": "2023-12-01"},
        lambda a: datetime.fromtimestamp(a.mtime, UTC).replace(tzinfo=None) >= D(2023, 12, 1),
    ),
    (
        "ingested_at<2024-06-05",
        {"field": "ingested_at", "lt": "2024-06-05"},
        lambda a: a.ingested_at < "2024-06-05",
    ),
    ("region:DE", {"field": "meta.region", "eq": "DE"}, meta_any("region", lambda e: e == "DE")),
    ("meta.region:DE", {"field": "region", "eq": "DE"}, meta_any("region", lambda e: e == "DE")),
    (
        "region:(DE OR AT)",
        {"field": "meta.region", "in": ["DE", "AT"]},
        meta_any("region", lambda e: e in ("DE", "AT")),
    ),
    (
        "region!=(DE OR AT)",
        {"field": "meta.region", "nin": ["DE", "AT"]},
        lambda a: not any(e in ("DE", "AT") for e in elements(a, "region")),
    ),
    (
        "-region:DE",
        {"not": {"field": "meta.region", "eq": "DE"}},
        lambda a: "DE" not in elements(a, "region"),
    ),
    ("region!=DE", {"field": "meta.region", "ne": "DE"}, lambda a: "DE" not in elements(a, "region")),
    ("region:*", {"field": "meta.region", "exists": True}, meta_any("region", lambda e: e is not None)),
    ("ingest_status:draft", {"field": "ingest_status", "eq": "draft"}, lambda a: False),
    # status is not built-in (the ingest result is ingest_status): it means meta.status.
    ("status:draft", {"field": "meta.status", "eq": "draft"}, meta_any("status", lambda e: e == "draft")),
    (
        "-status:draft",
        {"not": {"field": "meta.status", "eq": "draft"}},
        lambda a: "draft" not in elements(a, "status"),
    ),
    (
        "meta.status:draft",
        {"field": "meta.status", "eq": "draft"},
        meta_any("status", lambda e: e == "draft"),
    ),
    ("rating>=4", {"field": "meta.rating", "gte": "4"}, meta_any("rating", lambda e: number(e) and e >= 4)),
    ("rating<3", {"field": "meta.rating", "lt": "3"}, meta_any("rating", lambda e: number(e) and e < 3)),
    (
        "rating:4",
        {"field": "meta.rating", "eq": "4"},
        meta_any("rating", lambda e: e == "4" or (number(e) and e == 4)),
    ),
    (
        "rating:(4.5 OR 5)",
        {"field": "meta.rating", "in": ["4.5", "5"]},
        meta_any("rating", lambda e: number(e) and e in (4.5, 5)),
    ),
    ("sku:00123", {"field": "meta.sku", "eq": "00123"}, meta_any("sku", lambda e: e in (123, "00123"))),
    (
        "keywords:summer",
        {"field": "meta.keywords", "eq": "summer"},
        meta_any("keywords", lambda e: e == "summer"),
    ),
    (
        "keywords:(sea OR red)",
        {"field": "meta.keywords", "in": ["sea", "red"]},
        meta_any("keywords", lambda e: e in ("sea", "red")),
    ),
    (
        "keywords!=*",
        {"not": {"field": "meta.keywords", "exists": True}},
        lambda a: all(e is None for e in elements(a, "keywords")),
    ),
    (
        "keywords:Sum*",
        {"field": "meta.keywords", "prefix": "Sum"},
        meta_any("keywords", lambda e: isinstance(e, str) and e.startswith("Sum")),
    ),
    (
        "featured:true",
        {"field": "meta.featured", "eq": "true"},
        meta_any("featured", lambda e: e is True or (isinstance(e, str) and e.lower() in TRUTHY)),
    ),
    ("featured:false", {"field": "meta.featured", "eq": "false"}, meta_any("featured", lambda e: e is False)),
    (
        "rights_expires>now",
        {"field": "meta.rights_expires", "gt": "now"},
        meta_date("rights_expires", lambda m: m > D(2024, 6, 15, 12)),
    ),
    (
        "rights_expires<=2024-06-01",
        {"field": "meta.rights_expires", "lte": "2024-06-01"},
        meta_date("rights_expires", lambda m: m < D(2024, 6, 2)),
    ),
    (
        "rights_expires<2024-06-01T10:00:01",
        {"field": "meta.rights_expires", "lt": "2024-06-01T10:00:01"},
        meta_date("rights_expires", lambda m: m < D(2024, 6, 1, 10, 0, 1)),
    ),
    (
        "rights_expires<2024-06-01T10:00:00",
        {"field": "meta.rights_expires", "lt": "2024-06-01T10:00:00"},
        meta_date("rights_expires", lambda m: m < D(2024, 6, 1, 10)),
    ),
    (
        "shot:2024-05-01",
        {"field": "meta.shot", "eq": "2024-05-01"},
        meta_date("shot", lambda m: m.date() == D(2024, 5, 1).date()),
    ),
    (
        "shot>2024-05-01",
        {"field": "meta.shot", "gt": "2024-05-01"},
        meta_date("shot", lambda m: m >= D(2024, 5, 2)),
    ),
    (
        "camera.make:Nikon",
        {"field": "meta.camera.make", "eq": "Nikon"},
        meta_any("camera.make", lambda e: e == "Nikon"),
    ),
    (
        "camera:Nikon*",
        {"field": "meta.camera", "prefix": "Nikon"},
        meta_any("camera", lambda e: isinstance(e, str) and e.startswith("Nikon")),
    ),
    ("title:*", {"field": "meta.title", "exists": True}, meta_any("title", lambda e: e is not None)),
    (
        'title:"Ölfässer — Größe"',
        {"field": "meta.title", "eq": "Ölfässer — Größe"},
        meta_any("title", lambda e: e == "Ölfässer — Größe"),
    ),
    ("note:" + '"' + EVIL + '"', {"field": "meta.note", "eq": EVIL}, meta_any("note", lambda e: e == EVIL)),
    ("code>5", {"field": "meta.code", "gt": "5"}, lambda a: False),
    ("tag:shoe", {"tag": "shoe"}, lambda a: a.id in (1, 2)),
    ("tag:SHOE>=0.5", {"tag": "SHOE", "min_score": 0.5}, lambda a: a.id == 2),
    ("tag:red", {"tag": "red"}, lambda a: a.id == 2),
    ("tag:(red OR beach)", {"or": [{"tag": "red"}, {"tag": "beach"}]}, lambda a: a.id in (1, 2, 3)),
    ('"spring collection"', {"text": "spring collection"}, lambda a: a.id in (2, 3)),
    ("spring", {"text": "spring"}, lambda a: a.id in (2, 3, 4)),
    ("spring collection", {"and": [{"text": "spring"}, {"text": "collection"}]}, lambda a: a.id in (2, 3, 4)),
    ("grosse", {"text": "grosse"}, lambda a: False),
    ("Größe", {"text": "Größe"}, lambda a: a.id == 10),
    ("olfasser", {"text": "olfasser"}, lambda a: a.id == 10),
    (
        "kind:image region:DE",
        {"and": [{"field": "kind", "eq": "image"}, {"field": "meta.region", "eq": "DE"}]},
        lambda a: a.kind == "image" and "DE" in elements(a, "region"),
    ),
    (
        "kind:video OR kind:audio duration>100",
        {
            "or": [
                {"field": "kind", "eq": "video"},
                {"and": [{"field": "kind", "eq": "audio"}, {"field": "duration", "gt": "100"}]},
            ]
        },
        lambda a: a.kind == "video" or (a.kind == "audio" and (a.duration or 0) > 100),
    ),
    (
        "(kind:video OR kind:audio) duration>100",
        {
            "and": [
                {"or": [{"field": "kind", "eq": "video"}, {"field": "kind", "eq": "audio"}]},
                {"field": "duration", "gt": "100"},
            ]
        },
        lambda a: a.kind in ("video", "audio") and (a.duration or 0) > 100,
    ),
    (
        "kind:image AND NOT (region:DE OR rating>=4) -tag:shoe",
        {
            "and": [
                {"field": "kind", "eq": "image"},
                {"not": {"or": [{"field": "meta.region", "eq": "DE"}, {"field": "meta.rating", "gte": "4"}]}},
                {"not": {"tag": "shoe"}},
            ]
        },
        lambda a: (
            a.kind == "image"
            and not (
                "DE" in elements(a, "region") or any(number(e) and e >= 4 for e in elements(a, "rating"))
            )
            and a.id not in (1, 2)
        ),
    ),
    ("--kind:audio", {"not": {"not": {"field": "kind", "eq": "audio"}}}, lambda a: a.kind == "audio"),
]


@pytest.mark.parametrize(("text", "doc", "pred"), CASES, ids=[c[0] for c in CASES])
def test_both_syntaxes_give_one_ast_and_the_rows_of_the_predicate(
    library: tuple[Store, list[Asset]], text: str, doc: dict[str, Any], pred: Callable[[Asset], bool]
) -> None:
    store, assets = library
    by_string, by_json = parse_string(text), parse_json(doc)
    expected = {a.id for a in assets if pred(a)}

    assert by_string == by_json
    assert ids(store, by_string) == expected
    # Every term is two-valued, so NOT is the exact complement (missing fields included).
    assert ids(store, Not(by_string)) == {a.id for a in assets} - expected
    assert parse_json(to_json(by_string)) == by_string
    assert parse_filter(text) == parse_filter(to_json(by_string)) == by_string


def test_the_issue_example_reads_the_same_in_both_syntaxes(library: tuple[Store, list[Asset]]) -> None:
    store, _ = library
    doc = {
        "and": [
            {"field": "kind", "eq": "image"},
            {"field": "meta.region", "in": ["DE", "AT"]},
            {"field": "meta.rights_expires", "gt": "now"},
            {"not": {"field": "meta.status", "eq": "draft"}},
            {"tag": "shoe", "min_score": 0.25},
            {"text": "spring collection"},
        ]
    }
    text = (
        "kind:image region:(DE OR AT) rights_expires>now -status:draft "
        + 'tag:shoe>=0.25 "spring collection"'
    )

    assert parse_string(text) == parse_json(doc)
    assert ids(store, parse_json(doc)) == set()  # only asset 2 has "spring collection", and it is a draft
    assert ids(store, parse_string(text.replace("-status:draft ", ""))) == {2}


def test_status_is_the_meta_field_and_ingest_status_the_built_in(
    library: tuple[Store, list[Asset]],
) -> None:
    store, assets = library
    drafts = {a.id for a in assets if a.meta.get("status") == "draft"}
    assert drafts == {2, 12}
    assert "status" not in BUILTIN_FIELDS and BUILTIN_FIELDS["ingest_status"].sql == "a.status"

    f = parse_string("-status:draft")
    assert f == Not(Cmp("meta.status", "eq", "draft"))
    sql, params = compile_filter(f, now=NOW)
    assert "a.meta" in sql and "a.status" not in sql and '$."status"' in params
    assert ids(store, f) == {a.id for a in assets} - drafts  # the failed ingest (no meta) included
    assert ids(store, parse_string("ingest_status:failed")) == {5}


def test_typed_json_values_select_what_their_text_selects(library: tuple[Store, list[Asset]]) -> None:
    store, _ = library
    for text, typed in [
        ("rating>=4", 4),
        ("rating:4", 4.0),
        ("size>100000", 100_000),
        ("featured:true", True),
    ]:
        name, op = (
            re.split(r">=|:|>", text)[0],
            {">=": "gte", ":": "eq", ">": "gt"}[re.findall(r">=|:|>", text)[0]],
        )
        field = name if name in BUILTIN_FIELDS else f"meta.{name}"
        assert ids(store, parse_json({"field": field, op: typed})) == ids(store, parse_string(text)), text


def test_user_meta_overrides_embedded_metadata(library: tuple[Store, list[Asset]]) -> None:
    store, _ = library
    # Asset 8 sets region null in its own meta: the embedded "DE" is hidden, not a fallback.
    assert 8 not in ids(store, parse_string("region:DE"))
    assert ids(store, parse_string("camera:Canon*")) == {1}  # embedded only
    assert ids(store, parse_string("keywords:sea")) == set()  # asset 1's own keywords win
    assert ids(store, parse_string("keywords:summer")) == {1, 11}  # asset 11: embedded keywords


def test_schema_types_coerce_values_and_pick_the_comparison(library: tuple[Store, list[Asset]]) -> None:
    store, _ = library
    schema = FieldSchema({"rights_expires": "date", "code": "string", "sku": "string", "rating": "number"})

    assert ids(store, parse_string("code>5"), schema) == {15}  # text order: "9" > "5" > "10"
    assert ids(store, parse_string("code>5")) == set()  # undeclared: a number, stored as text
    assert ids(store, parse_string("sku:00123"), schema) == {21}
    assert ids(store, parse_string("sku:00123")) == {20, 21}
    with pytest.raises(
        FieldTypeError,
        match=r"meta\.rights_expires must be a date \(YYYY-MM-DD or ISO datetime\), "
        r"got 'soon'",
    ) as err:
        compile_filter(parse_string("rights_expires>soon"), schema=schema)
    assert err.value.field == "meta.rights_expires" and err.value.expected == "date"
    with pytest.raises(FieldTypeError, match=r"meta\.rating must be a number, got 'high'"):
        compile_filter(parse_string("rating:high"), schema=schema)
    with pytest.raises(FilterError, match=r"meta\.flag is true or false"):
        compile_filter(parse_string("flag>true"), schema=FieldSchema({"flag": "boolean"}))
    with pytest.raises(FilterError, match="prefix"):
        compile_filter(parse_string("rating:4*"), schema=schema)


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("kind:image (a OR b", 19, "expected ')' to close the '(' at column 12"),
        ("kind:image)", 11, "unexpected ')'"),
        ("a OR", 5, "dangling OR"),
        ("a OR OR b", 6, "dangling OR"),
        ("OR a", 1, "OR needs a term on its left"),
        ("a AND", 6, "dangling AND"),
        ("a NOT", 6, "expected a term after NOT"),
        ("()", 2, "empty parentheses"),
        ("kind:", 6, "expected a value after 'kind:'"),
        ("kind: image", 6, "no space after the operator"),
        (":x meta.:y", 4, "empty field name"),
        (":x a..b:y", 4, "invalid field name"),
        ("size>big", 6, "size must be a number, got 'big'"),
        ("created>soon", 9, "created must be a date"),
        ("created:2024-13-01", 9, "created must be a date"),
        ('title:"abc', 7, "unterminated quote"),
        ('"abc', 1, "unterminated quote"),
        ("region:(DE OR AT", 17, "expected OR or ')' in the value list opened at column 8"),
        ("region:(DE AT)", 12, "expected OR or ')'"),
        ("region:(DE OR )", 15, "dangling OR"),
        ("region:()", 9, "empty value list"),
        ("tag:", 5, "expected a value after 'tag:'"),
        ("tag:shoe>=high", 5, "minimum score must be a number"),
        ("tag>0.3", 1, "tags are written tag:NAME"),
        ("size:12*", 6, "prefix (*) applies to text and dates"),
        ("transcribed>true", 13, "transcribed is true or false"),
        ("kind:image !!!", 12, "'!!!' has no letters or digits"),
    ],
)
def test_malformed_strings_are_refused_with_their_column(text: str, column: int, fragment: str) -> None:
    with pytest.raises(FilterError) as err:
        parse_string(text)
    assert fragment in str(err.value)
    assert err.value.position == column - 1
    assert f"at column {column}:" in str(err.value)
    # The message shows the text with a caret under the fault.
    shown, caret = str(err.value).splitlines()[-2:]
    assert shown.strip() == text.strip() and caret.index("^") == shown.index(text[0]) + column - 1


@pytest.mark.parametrize(
    ("doc", "path", "fragment"),
    [
        (
            {"and": [{"field": "kind", "eq": "image"}, {"tag": "x"}, {"field": "kind", "equals": "image"}]},
            "$.and[2].field",
            "unknown operator 'equals' (valid: eq, ne, in, nin, gt, gte, lt, lte, exists, prefix)",
        ),
        ({"field": "kind"}, "$", "exactly one operator"),
        ({"field": "kind", "eq": "image", "ne": "video"}, "$", "exactly one operator"),
        ({"field": "", "eq": 1}, "$.field", "empty field name"),
        ({"field": "a b", "eq": 1}, "$.field", "invalid field name"),
        ({"field": "tag", "eq": "shoe"}, "$.field", "'tag' is not a field"),
        ({"or": []}, "$.or", "non-empty list"),
        ({"and": {"field": "kind"}}, "$.and", "non-empty list"),
        ({"not": {"field": "created", "gt": "someday"}}, "$.not.gt", "created must be a date"),
        ({"field": "meta.region", "in": "DE"}, "$.in", "expected a list"),
        ({"field": "meta.region", "in": ["DE", None]}, "$.in[1]", "expected a string, number or boolean"),
        ({"field": "meta.region", "eq": None}, "$.eq", "use exists"),
        ({"field": "meta.region", "exists": "yes"}, "$.exists", "expected true or false"),
        ({"tag": "shoe", "min_score": "high"}, "$.min_score", "expected a number"),
        ({"tag": "shoe", "score": 1}, "$", "unknown keys ['score']"),
        ({"text": "?!"}, "$.text", "no letters or digits"),
        ({"and": [{"field": "kind", "eq": "image"}], "or": []}, "$", "must be the only key"),
        ({"regex": ".*"}, "$", "unknown filter"),
        (["kind"], "$", "expected a filter object"),
    ],
)
def test_malformed_json_is_refused_with_its_path(doc: Any, path: str, fragment: str) -> None:
    with pytest.raises(FilterError) as err:
        parse_json(doc)
    assert err.value.path == path
    assert str(err.value).startswith(f"{path}: ")
    assert fragment in str(err.value)


def test_invalid_json_text_is_a_filter_error() -> None:
    with pytest.raises(FilterError, match="invalid JSON filter at line 1 column"):
        parse_filter('{"field": "kind", "eq": }')
    assert isinstance(FilterError("x"), QueryError)


def test_injection_attempts_stay_data(library: tuple[Store, list[Asset]]) -> None:
    store, _ = library
    before = store.db.execute("SELECT count(*) FROM assets").fetchone()[0]
    attempts: list[Filter] = [
        parse_string(f'title:"{EVIL}"'),
        parse_string('"' + EVIL + '"'),
        parse_json({"field": "meta.title", "in": [EVIL, '"', "'", "\\", "%", "_"]}),
        parse_json({"field": "uri", "prefix": EVIL}),
        parse_json({"tag": EVIL, "min_score": 0.1}),
        parse_json({"text": 'say "hi" OR NEAR(a b) * ^col: -x'}),
        parse_string('"a \\" b" OR c:"\\\\"'),
        parse_string("filename:%_* title:'*"),
    ]
    for f in attempts:
        sql, params = compile_filter(f, now=NOW)
        assert EVIL not in sql and "DROP" not in sql
        store.db.execute(f"SELECT a.id FROM assets a WHERE {sql}", params).fetchall()
    assert ids(store, parse_string("filename:%_*")) == set()  # LIKE wildcards are plain characters
    for name in (EVIL, "a'b", 'a"b', "x) OR 1=1 --", "meta.", "meta..x", "a/b", "ä"):
        with pytest.raises(FilterError):
            parse_json({"field": name, "eq": 1})
        with pytest.raises(FilterError):
            compile_filter(Cmp("meta." + name, "eq", 1))
    with pytest.raises(FilterError, match="takes a list"):
        compile_filter(Cmp("meta.x", "in", EVIL))
    assert store.db.execute("SELECT count(*) FROM assets").fetchone()[0] == before


def test_huge_and_deep_inputs_are_filter_errors_not_crashes() -> None:
    deep_text = "(" * 10_000 + "a" + ")" * 10_000
    deep_doc: dict[str, Any] = {"text": "a"}
    for _ in range(10_000):
        deep_doc = {"not": deep_doc}
    cases: list[Callable[[], object]] = [
        lambda: parse_string("x" * 1_000_000),
        lambda: parse_string(f'title:"{"x" * 1_000_000}"'),
        lambda: parse_string(deep_text),
        lambda: parse_string("(" * 40 + "a" + ")" * 40),
        lambda: parse_string("-" * 40 + "a"),
        lambda: parse_string("NOT " * 40 + "a"),
        lambda: parse_json(deep_doc),
        lambda: parse_json("[" * 5000 + "]" * 5000),
        lambda: parse_json('{"not":' * 2000 + '{"text": "a"}' + "}" * 2000),
        lambda: parse_string(" ".join(f"w{i}" for i in range(300))),
        lambda: parse_string("region:(" + " OR ".join(str(i) for i in range(1001)) + ")"),
        lambda: parse_json({"field": "meta.x", "in": list(range(1001))}),
        lambda: parse_json({"or": [{"field": "meta.x", "in": list(range(1000))} for _ in range(3)]}),
        lambda: parse_json({"field": "meta.x", "eq": "y" * 1001}),
        lambda: compile_filter(deep_doc_ast()),
        lambda: to_json(deep_doc_ast()),
    ]
    for case in cases:
        with pytest.raises(FilterError):
            case()


def deep_doc_ast() -> Filter:
    f: Filter = TextMatch("a")
    for _ in range(10_000):
        f = Not(f)
    return f


def test_limits_allow_what_people_write(library: tuple[Store, list[Asset]]) -> None:
    assert parse_string("(" * 30 + "a" + ")" * 30) == TextMatch("a")
    assert len(parse_json({"field": "meta.x", "in": list(range(1000))}).value) == 1000  # type: ignore[union-attr]
    big = parse_string(" ".join(f"w{i}" for i in range(256)))
    assert isinstance(big, And) and len(big.items) == 256
    _, params = compile_filter(
        parse_json({"field": "created", "in": [f"2024-01-{d:02d}" for d in range(1, 29)] * 35})
    )
    assert len(params) == 2 * 28 * 35
    # Balanced OR groups: SQLite's expression depth limit (1000) is never reached.
    assert ids(
        library[0], parse_json({"field": "created", "in": [f"2024-01-{d:02d}" for d in range(1, 29)] * 35})
    ) == {3}


def test_string_syntax_details() -> None:
    assert parse_string("a b OR c") == Or((And((TextMatch("a"), TextMatch("b"))), TextMatch("c")))
    assert parse_string("a AND b") == parse_string("a b") == And((TextMatch("a"), TextMatch("b")))
    assert parse_string("or and not") == And((TextMatch("or"), TextMatch("and"), TextMatch("not")))
    assert parse_string('title:"say \\"hi\\" \\\\ C:\\path"') == Cmp(
        "meta.title", "eq", 'say "hi" \\ C:\\path'
    )
    assert parse_string('title:"ab"*') == Cmp("meta.title", "prefix", "ab")
    assert parse_string('title:"a*"') == Cmp("meta.title", "eq", "a*")
    assert parse_string("url:http://x.org/a:b") == Cmp("meta.url", "eq", "http://x.org/a:b")
    assert parse_string("kind=image") == Cmp("kind", "eq", "image")
    assert parse_string("region!=*") == Not(Cmp("meta.region", "exists", True))
    assert parse_string('tag:"red shoe">=0.3') == TagIs("red shoe", 0.3)
    assert parse_string("tag:(shoe)") == TagIs("shoe")
    assert parse_string("  kind:image\t\n") == Cmp("kind", "eq", "image")
    assert parse_string("NOT(a)") == Not(TextMatch("a"))
    assert parse_string("日本語 región:ÄÖ") == And((TextMatch("日本語"), TextMatch("región:ÄÖ")))
    assert parse_string("región_x:ÄÖ") == TextMatch("región_x:ÄÖ")
    assert parse_string("r.x:ÄÖ") == Cmp("meta.r.x", "eq", "ÄÖ")


def test_parse_filter_dispatches_and_treats_empty_as_no_filter() -> None:
    assert parse_filter(None) is None and parse_filter("") is None and parse_filter("  ") is None
    assert parse_filter(' {"tag": "x"}') == TagIs("x")
    assert parse_filter({"tag": "x"}) == TagIs("x")
    assert parse_filter("tag:x") == TagIs("x")
    with pytest.raises(FilterError, match="empty filter"):
        parse_string(" ")
    with pytest.raises(FilterError):
        parse_filter(42)  # type: ignore[arg-type]


def test_to_json_is_canonical_and_json_ready() -> None:
    f = parse_string("kind:image -region:(DE OR AT) tag:x>=0.5 size>10 created:* spring")
    assert to_json(f) == {
        "and": [
            {"field": "kind", "eq": "image"},
            {"not": {"field": "meta.region", "in": ["DE", "AT"]}},
            {"tag": "x", "min_score": 0.5},
            {"field": "size", "gt": "10"},
            {"field": "created", "exists": True},
            {"text": "spring"},
        ]
    }
    assert parse_json({"field": "meta.x", "exists": False}) == Not(Cmp("meta.x", "exists", True))


def test_fts_query_quotes_every_word() -> None:
    assert (
        fts_query('spring "collection" NEAR(x) OR *')
        == '"spring" AND "collection" AND "NEAR" AND "x" AND "OR"'
    )
    assert fts_query("Größe 日本") == '"Größe" AND "日本"'
    assert fts_query(" ?! ") is None


def test_text_with_no_words_compiles_to_false(library: tuple[Store, list[Asset]]) -> None:
    store, _ = library
    assert ids(store, TextMatch("?!")) == set()
    assert ids(store, Or((TextMatch("?!"), Cmp("id", "eq", 1)))) == {1}
