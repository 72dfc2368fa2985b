"""Full-text words and the change log stay right when tags and OCR lines are written in bulk.

Inside ``Store.transaction()`` the per-row triggers only note the touched assets, and the
transaction brings their words up to date once before it commits (the writer's hot spot). The
words must be the same as the per-row upkeep gives outside a transaction, a rollback must leave
nothing behind, and searches must see the words the moment the transaction commits.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from assetlens.search.store import Store, Tag, TextLine


def _asset(store: Store, name: str) -> int:
    return store.upsert_asset(
        {"uri": f"/photos/{name}", "kind": "image", "size": 1, "mtime": 1.0, "status": "ok"}
    )


def _tag_words(store: Store, asset_id: int) -> list[str]:
    row = store.db.execute("SELECT tags FROM assets_fts WHERE rowid = ?", (asset_id,)).fetchone()
    return sorted(str(row[0]).split())


def _ocr_text(store: Store, asset_id: int) -> str | None:
    row = store.db.execute("SELECT text FROM ocr_fts WHERE rowid = ?", (asset_id,)).fetchone()
    return None if row is None else str(row[0])


def _matches(store: Store, table: str, words: str) -> set[int]:
    rows = store.db.execute(f"SELECT rowid FROM {table} WHERE {table} MATCH ?", (words,))
    return {r[0] for r in rows}


def _changed(store: Store) -> dict[int, int]:
    return dict(store.db.execute("SELECT asset_id, epoch FROM asset_changes").fetchall())


def _write(store: Store, asset_id: int, tags: list[str], lines: list[str]) -> None:
    store.replace_tags(asset_id, "clip", [Tag(t, 0.3, "clip", "m") for t in tags])
    store.ocr.replace(asset_id, "ocr-m", [TextLine(x, (0.1, 0.1, 0.9, 0.2), 0.9) for x in lines])


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "data dir ü" / "assetlens.db")


def test_words_written_in_a_transaction_equal_the_per_row_upkeep(store: Store) -> None:
    by_row, in_bulk = _asset(store, "by row.jpg"), _asset(store, "in bulk.jpg")
    tags, lines = ["sneaker", "white background", "product shot"], ["25% OFF", "Harvest market"]

    _write(store, by_row, tags, lines)  # autocommit: the per-row triggers
    epoch = store.assets_epoch
    with store.transaction():
        _write(store, in_bulk, tags, lines)

    assert _tag_words(store, in_bulk) == _tag_words(store, by_row) == sorted(" ".join(tags).split())
    assert _ocr_text(store, in_bulk) == _ocr_text(store, by_row) == "25% OFF\nHarvest market"
    assert _matches(store, "assets_fts", "sneaker") == {by_row, in_bulk}
    assert _matches(store, "ocr_fts", '"harvest market"') == {by_row, in_bulk}
    assert store.assets_epoch > epoch and _changed(store)[in_bulk] == store.assets_epoch
    assert store.assets_changed_since(epoch).tolist() == [in_bulk]
    assert store.db.execute("SELECT count(*) FROM touched").fetchone()[0] == 0
    assert store.get_state("deferred_words") is None


def test_replacing_and_removing_in_bulk_leaves_no_stale_word(store: Store) -> None:
    ids = [_asset(store, f"photo {i}.jpg") for i in range(20)]
    with store.transaction():
        for i in ids:
            _write(store, i, ["sneaker", f"shade{i}"], [f"SALE {i}"])
    with store.transaction():
        for i in ids[:10]:
            _write(store, i, ["boot"], [])  # retagged, and read again without text
        store.db.execute("DELETE FROM assets WHERE id = ?", (ids[-1],))

    assert _matches(store, "assets_fts", "sneaker") == set(ids[10:19])
    assert _matches(store, "assets_fts", "boot") == set(ids[:10])
    assert _matches(store, "ocr_fts", "sale") == set(ids[10:19])
    assert {r[0] for r in store.db.execute("SELECT rowid FROM ocr_fts")} == set(ids[10:19])
    store.db.execute("INSERT INTO assets_fts(assets_fts) VALUES ('integrity-check')")
    store.db.execute("INSERT INTO ocr_fts(ocr_fts) VALUES ('integrity-check')")


def test_a_failed_transaction_leaves_words_and_change_log_as_they_were(store: Store) -> None:
    asset = _asset(store, "kept.jpg")
    _write(store, asset, ["sneaker"], ["OPEN"])
    epoch, changes = store.assets_epoch, _changed(store)

    with pytest.raises(sqlite3.IntegrityError), store.transaction():
        _write(store, asset, ["boot"], ["CLOSED"])
        store.db.execute("INSERT INTO tags (asset_id, tag, score, source) VALUES (999999, 'x', 1, 'clip')")

    assert _tag_words(store, asset) == ["sneaker"] and _ocr_text(store, asset) == "OPEN"
    assert (store.assets_epoch, _changed(store)) == (epoch, changes)
    assert store.get_state("deferred_words") is None
    with store.transaction():  # and the next transaction works as ever
        _write(store, asset, ["boot"], [])
    assert _tag_words(store, asset) == ["boot"] and _ocr_text(store, asset) is None


def test_another_connection_sees_the_words_only_once_committed(store: Store, tmp_path: Path) -> None:
    asset = _asset(store, "late.jpg")
    reader = Store(store.path, readonly=True)
    with store.transaction():
        _write(store, asset, ["sneaker"], ["NEW IN"])
        assert _matches(reader, "assets_fts", "sneaker") == set()
    assert _matches(reader, "assets_fts", "sneaker") == {asset}
    assert _matches(reader, "ocr_fts", '"new in"') == {asset}
    reader.close()
