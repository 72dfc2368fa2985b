"""Vectors are stored as float16: close enough to float32, and older libraries are converted."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

from assetlens.search.store import MIGRATIONS, Store
from assetlens.search.store.schema import _split_sql
from assetlens.search.store.vectors import decode_vectors, encode_vector

FLOAT16_MIGRATION = next(i for i, m in enumerate(MIGRATIONS) if "assetlens_float32_to_float16" in m)


def clip_like(n: int, dim: int = 512, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = 0.5 * rng.standard_normal(dim) + rng.standard_normal((n, dim))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def test_float16_keeps_a_cosine_above_0_99999_to_float32() -> None:
    vectors = clip_like(2000)
    back = decode_vectors(b"".join(encode_vector(v) for v in vectors), len(vectors))
    cosine = (back * vectors).sum(1) / np.linalg.norm(back, axis=1)
    assert back.dtype == np.float32 and len(encode_vector(vectors[0])) == 512 * 2
    assert cosine.min() >= 0.99999


def test_a_library_of_float32_vectors_is_converted_on_open(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    for number, script in enumerate(MIGRATIONS[:FLOAT16_MIGRATION], start=1):
        for statement in _split_sql(script):
            db.execute(statement)
        db.execute(f"PRAGMA user_version = {number}")
    vectors = clip_like(3, dim=64, seed=1)
    db.execute(
        "INSERT INTO assets (id, uri, size, mtime, ingested_at, status) VALUES (1, '/a.jpg', 1, 0, 'x', 'ok')"
    )
    for vector in vectors:
        db.execute(
            "INSERT INTO vectors (asset_id, t, model, vector) VALUES (1, NULL, 'm@1', ?)",
            (vector.astype("<f4").tobytes(),),
        )
    db.execute("INSERT OR REPLACE INTO state VALUES ('model', 'm@1')")
    db.close()

    store = Store(path)

    got, times = store.vectors_of(1)
    assert store.schema_version == len(MIGRATIONS) and times == [None, None, None]
    assert {len(r[0]) for r in store.db.execute("SELECT vector FROM vectors")} == {64 * 2}
    np.testing.assert_allclose(got, vectors, atol=1e-3)
    assert ((got * vectors).sum(1) / np.linalg.norm(got, axis=1)).min() >= 0.99999
