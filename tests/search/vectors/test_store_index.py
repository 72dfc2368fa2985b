"""The SQLite store and the FAISS index derived from it, on real files."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from assetlens.models.settings import ModelSettings
from assetlens.search.errors import ModelMismatchError, StoreError
from assetlens.search.library import LibraryCore
from assetlens.search.settings import SearchSettings
from assetlens.search.store import MIGRATIONS, Store, Tag
from assetlens.search.vectors.index import IndexConfig, VectorIndex


def unit(rng: np.random.Generator, n: int, dim: int = 8) -> np.ndarray:
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def add_asset(store: Store, uri: str, vectors: np.ndarray, model: str = "m@1") -> int:
    with store.transaction():
        asset_id = store.upsert_asset(
            {"uri": uri, "content_hash": uri, "kind": "image", "size": 1, "mtime": 0.0, "status": "ok"}
        )
        store.replace_vectors(asset_id, model, vectors, [None] * len(vectors))
    return asset_id


def test_new_store_is_wal_at_the_latest_schema(tmp_path: Path) -> None:
    with Store(tmp_path / "lib" / "assetlens.db") as store:
        assert store.schema_version == len(MIGRATIONS)
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_newer_schema_and_garbage_files_are_refused(tmp_path: Path) -> None:
    newer = tmp_path / "newer.db"
    sqlite3.connect(newer).execute("PRAGMA user_version = 99").connection.close()
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)

    with pytest.raises(StoreError, match="newer than this AssetLens"):
        Store(newer)
    with pytest.raises(StoreError, match=str(garbage)):
        Store(garbage)


def test_readonly_open_of_a_missing_library_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="assetlens ingest"):
        Store(tmp_path / "missing.db", readonly=True)


def test_a_failed_transaction_leaves_nothing_behind(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    rng = np.random.default_rng(0)
    add_asset(store, "/a.jpg", unit(rng, 1))
    with pytest.raises(RuntimeError), store.transaction():
        asset_id = store.upsert_asset(
            {"uri": "/b.jpg", "content_hash": "b", "kind": "image", "size": 1, "mtime": 0.0, "status": "ok"}
        )
        store.replace_vectors(asset_id, "m@1", unit(rng, 1), [None])
        raise RuntimeError("crash in the middle of a batch")
    assert [uri for _, uri in store.uris()] == ["/a.jpg"] and store.count_vectors() == 1


def test_vectors_of_a_second_model_are_refused(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    rng = np.random.default_rng(0)
    add_asset(store, "/a.jpg", unit(rng, 1), model="m@1")
    with pytest.raises(ModelMismatchError, match="m@1"):
        add_asset(store, "/b.jpg", unit(rng, 1), model="other@2")
    assert store.count_vectors() == 1 and len(store.uris()) == 1


def test_deleting_an_asset_cascades_and_bumps_the_vector_epoch(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    rng = np.random.default_rng(0)
    asset_id = add_asset(store, "/v.mp4", unit(rng, 3))
    with store.transaction():
        store.replace_tags(asset_id, "clip", [Tag("shoe", 0.3, "clip", "m@1", 1.5)])
    epoch = store.vector_epoch
    with store.transaction():
        store.delete_asset(asset_id)
    assert store.count_vectors() == 0 and store.tags_of([asset_id]) == {asset_id: []}
    assert store.vector_epoch == epoch + 3


def test_index_catches_up_then_rebuilds_after_deletes(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    rng = np.random.default_rng(1)
    first = add_asset(store, "/1.jpg", unit(rng, 1))
    VectorIndex(store, tmp_path).sync()
    add_asset(store, "/2.jpg", unit(rng, 1))

    caught_up = VectorIndex(store, tmp_path).sync()
    assert caught_up.size == 2 and not caught_up.rebuilt
    assert json.loads((tmp_path / "index.json").read_text())["last_id"] == store.max_vector_id()

    with store.transaction():
        store.delete_asset(first)
    rebuilt = VectorIndex(store, tmp_path).sync()
    assert rebuilt.size == 1 and rebuilt.rebuilt and rebuilt.status()["in_step"]


def test_index_search_is_exact_inner_product(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    rng = np.random.default_rng(2)
    vectors = unit(rng, 200, dim=16)
    for i, vector in enumerate(vectors):
        add_asset(store, f"/{i}.jpg", vector[None, :])
    index = VectorIndex(store, tmp_path).sync()
    query = unit(rng, 1, dim=16)

    scores, ids = index.search(query, 10)

    expected = np.argsort(-(vectors @ query[0]))[:10] + 1  # vector ids start at 1
    np.testing.assert_array_equal(ids[0], expected)
    # The store keeps float16: scores agree with float32 arithmetic to about 1e-4.
    np.testing.assert_allclose(scores[0], np.sort(vectors @ query[0])[::-1][:10], atol=1e-3)


def test_a_corrupt_index_file_is_rebuilt_from_the_store(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    add_asset(store, "/1.jpg", unit(np.random.default_rng(3), 1))
    VectorIndex(store, tmp_path).sync()
    (tmp_path / "index.faiss").write_bytes(b"garbage")

    index = VectorIndex(store, tmp_path).sync()

    assert index.rebuilt and index.size == 1


def test_index_settings_come_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "assetlens.db")
    rng = np.random.default_rng(5)
    for i in range(40):
        add_asset(store, f"/lib/{i}.jpg", unit(rng, 1))
    store.close()
    monkeypatch.setenv("ASSETLENS_INDEX_KIND", "hnsw")
    monkeypatch.setenv("ASSETLENS_INDEX_HNSW_M", "8")
    monkeypatch.setenv("ASSETLENS_INDEX_HNSW_EF_CONSTRUCTION", "40")

    lib = LibraryCore(SearchSettings(data_dir=tmp_path), ModelSettings(clip_model="tiny"))
    status = lib.index.sync().status()

    assert status["kind"] == "hnsw" and status["vectors"] == 40
    assert status["params"] == {"m": 8, "ef_construction": 40}
    assert lib.index.config.hnsw_ef_search == IndexConfig().hnsw_ef_search  # unset: the default
    lib.close()
    monkeypatch.setenv("ASSETLENS_INDEX_HNSW_M", "2")
    with pytest.raises(ValidationError, match="index_hnsw_m"):
        SearchSettings(data_dir=tmp_path)
