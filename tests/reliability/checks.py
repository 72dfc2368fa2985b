"""What a sound library looks like, and how two libraries are compared.

:func:`check_store` is the invariant every reliability test asserts after a fault: the SQLite
file is intact, no asset is half written, the full-text indexes agree with their tables and the
FAISS index rebuilt or caught up from the store holds exactly the store's vectors.
:func:`snapshot` reduces a library to what ingest produced for each file, so a library that
survived kills, a full disk or a concurrent writer can be compared with one made in one go.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from assetlens.search.store import Store
from assetlens.search.vectors.index import VectorIndex

DB_FILE = "assetlens.db"


@contextmanager
def connect(data_dir: Path) -> Iterator[sqlite3.Connection]:
    """A plain connection to a library's database, closed on exit (WAL: readers never block)."""
    conn = sqlite3.connect(data_dir / DB_FILE, timeout=30)
    conn.row_factory = sqlite3.Row
    try:
        yield conn
    finally:
        conn.close()


def count(data_dir: Path, table: str) -> int:
    """Rows of a table, 0 while the database or its schema does not exist yet."""
    if not (data_dir / DB_FILE).exists():
        return 0
    try:
        with connect(data_dir) as conn:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def check_store(data_dir: Path, *, index: bool = True, finished: bool = True) -> None:
    """Assert the library at ``data_dir`` is sound.

    Args:
        data_dir: The library.
        index: Also build the FAISS index from the store and compare it.
        finished: No job may be left ``running`` (false right after a kill).
    """
    with connect(data_dir) as conn:
        assert [tuple(r) for r in conn.execute("PRAGMA integrity_check")] == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        for fts in ("segments_fts", "assets_fts", "ocr_fts"):
            conn.execute(f"INSERT INTO {fts}({fts}) VALUES ('integrity-check')")
        # Words written in bulk were caught up before their transaction committed.
        assert conn.execute("SELECT count(*) FROM touched").fetchone()[0] == 0
        stale = conn.execute(
            "SELECT a.id FROM assets a JOIN assets_fts f ON f.rowid = a.id WHERE f.tags IS NOT "
            "coalesce((SELECT group_concat(tag, ' ') FROM tags WHERE asset_id = a.id), '')"
        ).fetchall()
        assert stale == [], f"assets whose tag words are stale: {[r[0] for r in stale]}"
        # One full-text document per asset (assets written in bulk included), none left over.
        documents = {r[0] for r in conn.execute("SELECT rowid FROM assets_fts")}
        assert documents == {r[0] for r in conn.execute("SELECT id FROM assets")}
        # One OCR full-text document per asset with text read in its pictures, none for others.
        documents = {r[0] for r in conn.execute("SELECT rowid FROM ocr_fts")}
        assert documents == {r[0] for r in conn.execute("SELECT DISTINCT asset_id FROM ocr_lines")}
        half = conn.execute(
            "SELECT uri FROM assets a WHERE status = 'ok' AND kind IN ('image', 'video') "
            "AND NOT EXISTS (SELECT 1 FROM vectors v WHERE v.asset_id = a.id)"
        ).fetchall()
        assert half == [], f"assets without vectors: {[r[0] for r in half]}"
        for table in ("vectors", "tags", "segments", "ocr_lines", "ocr_reads"):
            orphans = conn.execute(
                f"SELECT count(*) FROM {table} WHERE asset_id NOT IN (SELECT id FROM assets)"
            ).fetchone()[0]
            assert orphans == 0, f"{orphans} {table} rows without an asset"
        failed_with_data = conn.execute(
            "SELECT count(*) FROM vectors v JOIN assets a ON a.id = v.asset_id WHERE a.status = 'failed'"
        ).fetchone()[0]
        assert failed_with_data == 0
        dupes = conn.execute("SELECT uri FROM assets GROUP BY uri HAVING count(*) > 1").fetchall()
        assert dupes == []
        if finished:
            running = conn.execute("SELECT id, kind FROM jobs WHERE status = 'running'").fetchall()
            assert running == [], f"jobs left running: {[tuple(r) for r in running]}"
    if index:
        check_index(data_dir)


def check_index(data_dir: Path) -> None:
    """The FAISS index, loaded and brought level with the store, holds exactly its vectors."""
    with Store(data_dir / DB_FILE) as store:
        vector_index = VectorIndex(store, data_dir).sync()
        stored = {int(i) for ids, _, _ in store.iter_vector_rows() for i in ids}
        assert vector_index.size == len(stored) == store.count_vectors()
        if stored:
            probe = np.ones((1, vector_index.state.dim), np.float32)
            _, ids = vector_index.search(probe, vector_index.size)
            assert {int(i) for i in ids[0]} == stored


def snapshot(data_dir: Path) -> dict[str, dict[str, Any]]:
    """What ingest produced, per uri: kind, content, status, vectors, tags and transcript.

    Ids, times of the run and job rows are left out: they differ between equivalent runs.
    """
    out: dict[str, dict[str, Any]] = {}
    with connect(data_dir) as conn:
        uris = {r["id"]: r["uri"] for r in conn.execute("SELECT id, uri FROM assets")}
        for row in conn.execute("SELECT * FROM assets ORDER BY uri"):
            aid = row["id"]
            out[row["uri"]] = {
                "kind": row["kind"],
                "mime": row["mime"],
                "content_hash": row["content_hash"],
                "size": row["size"],
                "status": row["status"],
                "error": row["error"],
                "duplicate_of": uris.get(row["duplicate_of"]),
                "width": row["width"],
                "height": row["height"],
                "duration": row["duration"],
                "poster_t": row["poster_t"],
                "transcript_model": row["transcript_model"],
                "vectors": [
                    (r[0], r[1], bytes(r[2]))
                    for r in conn.execute(
                        "SELECT t, model, vector FROM vectors WHERE asset_id = ? ORDER BY t, id", (aid,)
                    )
                ],
                "tags": {
                    (r[0], r[1]): (r[2], r[3], r[4])
                    for r in conn.execute(
                        "SELECT tag, source, score, model, t FROM tags WHERE asset_id = ?", (aid,)
                    )
                },
                "segments": [
                    tuple(r)
                    for r in conn.execute(
                        "SELECT start, end, text, words, language, confidence FROM segments "
                        "WHERE asset_id = ? ORDER BY start, id",
                        (aid,),
                    )
                ],
            }
    return out


def assert_same_library(got: dict[str, dict[str, Any]], want: dict[str, dict[str, Any]], exact: bool) -> None:
    """Two snapshots describe the same library.

    Args:
        got: The library under test.
        want: The reference.
        exact: Vectors and tag scores must be equal to the bit. Otherwise (batches cut at other
            places by a resume: CPU matrix kernels round differently per batch shape) vectors
            may differ by 1e-5 and scores by 1e-4, and everything else must still be equal.
    """
    assert sorted(got) == sorted(want)
    for uri, asset in want.items():
        other = got[uri]
        plain = [k for k in asset if k not in ("vectors", "tags", "poster_t")]
        assert {k: other[k] for k in plain} == {k: asset[k] for k in plain}, uri
        if exact:
            assert other["vectors"] == asset["vectors"], uri
            assert other["tags"] == asset["tags"], uri
            assert other["poster_t"] == asset["poster_t"], uri
            continue
        assert [v[:2] for v in other["vectors"]] == [v[:2] for v in asset["vectors"]], uri
        for (_, _, a), (_, _, b) in zip(other["vectors"], asset["vectors"], strict=True):
            np.testing.assert_allclose(np.frombuffer(a, np.float16), np.frombuffer(b, np.float16), atol=1e-3)
        assert set(other["tags"]) == set(asset["tags"]), uri
        for key, (score, model, t) in asset["tags"].items():
            assert other["tags"][key] == (pytest.approx(score, abs=1e-4), model, t), uri
