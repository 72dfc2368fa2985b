"""Full-text words and the change log stay right when assets, tags and OCR lines are written in bulk.

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


def _document(store: Store, asset_id: int) -> tuple[str, str, str] | None:
    row = store.db.execute("SELECT name, tags, meta FROM assets_fts WHERE rowid = ?", (asset_id,)).fetchone()
    return None if row is None else (str(row[0]), str(row[1]), str(row[2]))


def _imported(store: Store, names: list[str], meta: str) -> list[int]:
    return store.add_imported_assets([(f"/import/{n}", "image", "image/jpeg", None, meta) for n in names])


def test_assets_added_changed_and_deleted_in_bulk_get_the_per_row_documents(store: Store) -> None:
    meta = '{"campaign": "Spring Sale", "region": "DE", "sku": ["A-1", "B-2"]}'
    [by_row] = _imported(store, ["by row.jpg"], meta)  # autocommit: the per-row triggers
    _write(store, by_row, ["sneaker"], [])
    epoch = store.assets_epoch
    with store.transaction():
        added = _imported(store, ["a.jpg", "b.jpg", "gone.jpg"], meta)
        _write(store, added[0], ["sneaker"], [])
        store.update_imported_assets([('{"campaign": "Autumn"}', None, added[1])])
        store.delete_asset(added[2])

    assert _document(store, added[0])[1:] == _document(store, by_row)[1:]  # tags, meta words
    assert _document(store, added[0])[0] == "a.jpg" and _document(store, added[2]) is None
    assert _matches(store, "assets_fts", '"spring sale" AND sneaker') == {by_row, added[0]}
    assert _matches(store, "assets_fts", "autumn") == {added[1]}
    assert _matches(store, "assets_fts", '"spring sale"') == {by_row, added[0]}  # b's old meta gone
    assert store.assets_changed_since(epoch).tolist() == added
    assert store.db.execute("SELECT count(*) FROM touched").fetchone()[0] == 0
    store.db.execute("INSERT INTO assets_fts(assets_fts) VALUES ('integrity-check')")


def test_deleting_an_original_in_bulk_leaves_its_copies_documents_right(store: Store) -> None:
    original, copy = _asset(store, "original.jpg"), _asset(store, "copy.jpg")
    store.db.execute("UPDATE assets SET duplicate_of = ? WHERE id = ?", (original, copy))
    with store.transaction():
        store.db.execute('UPDATE assets SET meta = \'{"campaign": "Harbour"}\' WHERE id = ?', (copy,))
        store.delete_asset(original)  # sets the copy's duplicate_of to NULL: an update of it again

    assert _document(store, original) is None and _matches(store, "assets_fts", "harbour") == {copy}
    assert store.db.execute("SELECT duplicate_of FROM assets WHERE id = ?", (copy,)).fetchone()[0] is None


def test_an_id_freed_and_taken_again_in_one_transaction_gets_the_new_assets_document(store: Store) -> None:
    _asset(store, "kept.jpg")
    newest = _asset(store, "old newest.jpg")
    with store.transaction():
        store.delete_asset(newest)
        again = _asset(store, "new arrival.jpg")  # SQLite hands out the freed largest id again

    assert again == newest and _document(store, again)[0] == "new arrival.jpg"
    assert _matches(store, "assets_fts", "newest") == set() and _matches(store, "assets_fts", "arrival") == {
        again
    }


def _triggers(store: Store) -> dict[str, str]:
    return dict(store.db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").fetchall())


def test_an_import_batch_leaves_every_trigger_as_it_was_for_other_connections_too(store: Store) -> None:
    # An import batch defers the words of its assets to the end of its transaction: another
    # connection sees the triggers unchanged, and a failed insert or a rollback keeps the words
    # of what is stored right.
    before = _triggers(store)
    reader = Store(store.path, readonly=True)
    meta = '{"campaign": "Spring Sale"}'
    with store.transaction():
        [kept] = _imported(store, ["kept.jpg"], meta)
        assert _triggers(store) == before and _triggers(reader) == before
    with store.transaction():
        with pytest.raises(sqlite3.IntegrityError):
            _imported(store, ["kept.jpg"], meta)  # the uri exists: this insert fails...
        [other] = _imported(store, ["other.jpg"], meta)  # ...and the transaction goes on
    with pytest.raises(sqlite3.IntegrityError), store.transaction():
        _imported(store, ["dropped.jpg"], meta)
        _imported(store, ["kept.jpg"], meta)  # the whole transaction rolls back

    assert _triggers(store) == _triggers(reader) == before
    [by_row] = _imported(store, ["by row.jpg"], meta)  # autocommit: the per-row triggers still work
    assert _matches(reader, "assets_fts", '"spring sale"') == {kept, other, by_row}
    assert store.db.execute("SELECT count(*) FROM assets WHERE uri LIKE '%dropped%'").fetchone()[0] == 0
    reader.close()
