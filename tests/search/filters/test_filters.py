"""Filters on a real SQLite store: both syntaxes, the same AST, the same rows as a Python predicate."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from filter_cases import EVIL, ids

from assetlens.search.filters import (
    Not,
    parse_filter,
    parse_json,
    parse_string,
    to_json,
)
from assetlens.search.store import Asset, Store

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
