"""The filter tests' module-scoped SQLite store, filled with the assets of filter_cases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from filter_cases import ASSETS

from assetlens.search.store import Asset, Store


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
