"""A small library of five assets with meta, embedded metadata, tags and a transcript."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from assetlens.search.store import Store, Tag

# name (below tmp_path/files), columns, meta, embedded, tags
ASSETS: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any], list[Tag]]] = [
    ("photos/beach.jpg", {"kind": "image", "mime": "image/jpeg", "width": 4000, "content_hash": "h-beach",
     "created": "2024-05-01T10:30:00Z"},
     {"region": "DE", "keywords": ["summer", "beach"], "status": "approved"},
     {"title": "Beach day", "keywords": ["sea"], "camera": "Canon EOS 5D"},
     [Tag("beach", 0.9, "clip"), Tag("shoe", 0.3, "clip")]),
    ("photos/shoe red.png", {"kind": "image", "mime": "image/png", "width": 1000, "content_hash": "h-shoe",
     "created": "2023-01-02T00:00:00Z"},
     {"region": "AT", "keywords": ["summer"]}, {}, [Tag("shoe", 0.8, "user"), Tag("red", 0.6, "clip")]),
    ("videos/spring.mp4", {"kind": "video", "mime": "video/mp4", "width": 1920, "content_hash": "h-spring",
     "created": "2024-06-01T12:00:00Z", "duration": 12.5},
     {}, {"region": "FR"}, [Tag("beach", 0.4, "clip")]),
    ("copies/beach copy.jpg", {"kind": "image", "mime": "image/jpeg", "width": 4000,
     "content_hash": "h-beach", "created": "2024-05-01T10:30:00Z", "duplicate_of": 1},
     {"region": None}, {"region": "DE"}, []),
    ("broken/bad.jpg", {"status": "failed", "error": "decode error", "content_hash": "h-bad"}, {}, {}, []),
]  # fmt: skip


def make_store(root: Path) -> Store:
    """A library of five assets whose files exist below ``root/files``."""
    store = Store(root / "data" / "assetlens.db")
    with store.transaction():
        for name, columns, meta, embedded, tags in ASSETS:
            path = root / "files" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"not really media")
            values = {"uri": str(path), "size": 16, "mtime": 1_700_000_000.0, "status": "ok", "meta": meta,
                      "embedded": embedded, **columns}  # fmt: skip
            asset_id = store.upsert_asset(values)
            for source in ("clip", "user"):
                store.replace_tags(asset_id, source, [t for t in tags if t.source == source])
    store.replace_segments(
        3, "whisper", [{"start": 0.0, "end": 2.0, "text": " Welcome to the spring collection"}]
    )
    return store


def uri(tmp_path: Path, name: str) -> str:
    return str(tmp_path / "files" / name)


def run_cli(tmp_path: Path, *args: str) -> Any:
    """``assetlens --data-dir tmp_path/data ARGS`` in process (the library of :func:`make_store`)."""
    from click.testing import CliRunner

    from assetlens.enrich.cli import cli

    return CliRunner().invoke(cli, ["--data-dir", str(tmp_path / "data"), *args])


def library_store(tmp_path: Path) -> Iterator[Store]:
    """The body of a ``store`` fixture: the library of :func:`make_store`, closed afterwards."""
    store = make_store(tmp_path)
    yield store
    store.close()
