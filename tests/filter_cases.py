"""The filter tests' shared data: the reference time, the injection string, the assets, and ids()."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from assetlens.search.filters import Filter, compile_filter
from assetlens.search.filters.fields import FieldSchema
from assetlens.search.store import Store, Tag

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


def ids(store: Store, f: Filter, schema: FieldSchema | None = None) -> set[int]:
    sql, params = compile_filter(f, schema=schema, now=NOW)
    return {r[0] for r in store.db.execute(f"SELECT a.id FROM assets a WHERE {sql}", params)}
