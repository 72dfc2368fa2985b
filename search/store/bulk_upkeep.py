"""Upkeep of derived tables in bulk: a transaction's writes update the full-text documents and the
filter caches' change log once per asset, just before it commits, instead of once per row.

Why: per-row triggers rewrote an asset's whole full-text document once per tag or OCR line (8 to
20 of them per photo: most of the ingest writer's time), and walked every new asset's meta JSON
one row at a time (most of an embedding import's time). :meth:`StoreBase.transaction` sets the
state key ``deferred_words``; the triggers then only note the asset in ``touched`` (by room:
``assets``, ``tags``, ``ocr``), and :data:`CATCH_UP_WORDS` brings the noted assets' documents and
change log up to date in one statement each. Writes outside a transaction, or from another
program, keep the per-row upkeep.

The two migrations here are entries of :data:`search.store.schema.MIGRATIONS`.
"""

# Migration 8 (issue 11): tags and OCR lines.
BULK_WORDS = """
    -- Writes in bulk (issue 11): the per-row triggers of the first migrations rewrote an asset's
    -- whole full-text document once per tag or OCR line (8 to 20 of them per photo: most of the
    -- writer's time).
    -- StoreBase.transaction() sets the state key 'deferred_words': the triggers then only note
    -- the asset in `touched`, and the transaction brings the documents and the change log of
    -- the noted assets up to date once, just before it commits. Writes outside a transaction,
    -- or from another program, keep the per-row upkeep.
    CREATE TABLE touched (
        room TEXT NOT NULL,
        asset_id INTEGER NOT NULL,
        PRIMARY KEY (room, asset_id)
    ) WITHOUT ROWID;
    DROP TRIGGER tags_fts_ai;
    DROP TRIGGER tags_fts_ad;
    DROP TRIGGER tags_changed_ai;
    DROP TRIGGER tags_changed_au;
    DROP TRIGGER tags_changed_ad;
    DROP TRIGGER ocr_lines_ai;
    DROP TRIGGER ocr_lines_ad;
    DROP TRIGGER ocr_lines_au;
    CREATE TRIGGER tags_fts_ai AFTER INSERT ON tags
        WHEN NOT EXISTS (SELECT 1 FROM state WHERE key = 'deferred_words') BEGIN
        UPDATE assets_fts SET tags = (SELECT group_concat(tag, ' ') FROM tags WHERE asset_id = new.asset_id)
        WHERE rowid = new.asset_id;
    END;
    CREATE TRIGGER tags_fts_ad AFTER DELETE ON tags
        WHEN NOT EXISTS (SELECT 1 FROM state WHERE key = 'deferred_words') BEGIN
        UPDATE assets_fts SET tags = coalesce(
            (SELECT group_concat(tag, ' ') FROM tags WHERE asset_id = old.asset_id), '')
        WHERE rowid = old.asset_id;
    END;
    CREATE TRIGGER tags_changed_ai AFTER INSERT ON tags
        WHEN NOT EXISTS (SELECT 1 FROM state WHERE key = 'deferred_words') BEGIN
        UPDATE state SET value = CAST(value AS INTEGER) + 1 WHERE key = 'assets_epoch';
        INSERT INTO asset_changes SELECT new.asset_id, CAST(value AS INTEGER) FROM state
            WHERE key = 'assets_epoch' ON CONFLICT(asset_id) DO UPDATE SET epoch = excluded.epoch;
    END;
    CREATE TRIGGER tags_changed_au AFTER UPDATE ON tags
        WHEN NOT EXISTS (SELECT 1 FROM state WHERE key = 'deferred_words') BEGIN
        UPDATE state SET value = CAST(value AS INTEGER) + 1 WHERE key = 'assets_epoch';
        INSERT INTO asset_changes SELECT x.id, CAST(value AS INTEGER) FROM state,
            (SELECT new.asset_id AS id UNION SELECT old.asset_id) x WHERE key = 'assets_epoch'
            ON CONFLICT(asset_id) DO UPDATE SET epoch = excluded.epoch;
    END;
    CREATE TRIGGER tags_changed_ad AFTER DELETE ON tags
        WHEN NOT EXISTS (SELECT 1 FROM state WHERE key = 'deferred_words') BEGIN
        UPDATE state SET value = CAST(value AS INTEGER) + 1 WHERE key = 'assets_epoch';
        INSERT INTO asset_changes SELECT old.asset_id, CAST(value AS INTEGER) FROM state
            WHERE key = 'assets_epoch' ON CONFLICT(asset_id) DO UPDATE SET epoch = excluded.epoch;
    END;
    CREATE TRIGGER ocr_lines_ai AFTER INSERT ON ocr_lines
        WHEN NOT EXISTS (SELECT 1 FROM state WHERE key = 'deferred_words') BEGIN
        DELETE FROM ocr_fts WHERE rowid = new.asset_id;
        INSERT INTO ocr_fts(rowid, text)
            SELECT asset_id, group_concat(text, char(10)) FROM ocr_lines WHERE asset_id = new.asset_id
            GROUP BY asset_id;
    END;
    CREATE TRIGGER ocr_lines_ad AFTER DELETE ON ocr_lines
        WHEN NOT EXISTS (SELECT 1 FROM state WHERE key = 'deferred_words') BEGIN
        DELETE FROM ocr_fts WHERE rowid = old.asset_id;
        INSERT INTO ocr_fts(rowid, text)
            SELECT asset_id, group_concat(text, char(10)) FROM ocr_lines WHERE asset_id = old.asset_id
            GROUP BY asset_id;
    END;
    CREATE TRIGGER ocr_lines_au AFTER UPDATE ON ocr_lines
        WHEN NOT EXISTS (SELECT 1 FROM state WHERE key = 'deferred_words') BEGIN
        DELETE FROM ocr_fts WHERE rowid IN (old.asset_id, new.asset_id);
        INSERT INTO ocr_fts(rowid, text)
            SELECT asset_id, group_concat(text, char(10)) FROM ocr_lines
            WHERE asset_id IN (old.asset_id, new.asset_id) GROUP BY asset_id;
    END;
    CREATE TRIGGER tags_touched_ai AFTER INSERT ON tags
        WHEN EXISTS (SELECT 1 FROM state WHERE key = 'deferred_words') BEGIN
        INSERT OR IGNORE INTO touched VALUES ('tags', new.asset_id);
    END;
    CREATE TRIGGER tags_touched_ad AFTER DELETE ON tags
        WHEN EXISTS (SELECT 1 FROM state WHERE key = 'deferred_words') BEGIN
        INSERT OR IGNORE INTO touched VALUES ('tags', old.asset_id);
    END;
    CREATE TRIGGER tags_touched_au AFTER UPDATE ON tags
        WHEN EXISTS (SELECT 1 FROM state WHERE key = 'deferred_words') BEGIN
        INSERT OR IGNORE INTO touched VALUES ('tags', old.asset_id), ('tags', new.asset_id);
    END;
    CREATE TRIGGER ocr_touched_ai AFTER INSERT ON ocr_lines
        WHEN EXISTS (SELECT 1 FROM state WHERE key = 'deferred_words') BEGIN
        INSERT OR IGNORE INTO touched VALUES ('ocr', new.asset_id);
    END;
    CREATE TRIGGER ocr_touched_ad AFTER DELETE ON ocr_lines
        WHEN EXISTS (SELECT 1 FROM state WHERE key = 'deferred_words') BEGIN
        INSERT OR IGNORE INTO touched VALUES ('ocr', old.asset_id);
    END;
    CREATE TRIGGER ocr_touched_au AFTER UPDATE ON ocr_lines
        WHEN EXISTS (SELECT 1 FROM state WHERE key = 'deferred_words') BEGIN
        INSERT OR IGNORE INTO touched VALUES ('ocr', old.asset_id), ('ocr', new.asset_id);
    END;
"""

# Migration 10 (issue 12): assets themselves (an import adds them by the million).
BULK_ASSETS = """
    DROP TRIGGER assets_fts_ai;
    DROP TRIGGER assets_fts_au;
    DROP TRIGGER assets_fts_ad;
    DROP TRIGGER assets_changed_ai;
    DROP TRIGGER assets_changed_au;
    DROP TRIGGER assets_changed_ad;
    CREATE TRIGGER assets_fts_ai AFTER INSERT ON assets
        WHEN NOT EXISTS (SELECT 1 FROM state WHERE key = 'deferred_words') BEGIN
        INSERT INTO assets_fts(rowid, name, tags, meta) VALUES (
            new.id, replace(new.uri, rtrim(new.uri, replace(new.uri, '/', '')), ''), '',
            coalesce((SELECT group_concat(value, ' ') FROM json_tree(new.meta)
                      WHERE atom IS NOT NULL), '')
            || ' ' ||
            coalesce((SELECT group_concat(value, ' ') FROM json_tree(new.embedded)
                      WHERE atom IS NOT NULL), ''));
    END;
    CREATE TRIGGER assets_fts_au AFTER UPDATE OF uri, meta, embedded ON assets
        WHEN NOT EXISTS (SELECT 1 FROM state WHERE key = 'deferred_words') BEGIN
        UPDATE assets_fts SET
            name = replace(new.uri, rtrim(new.uri, replace(new.uri, '/', '')), ''),
            meta = coalesce((SELECT group_concat(value, ' ') FROM json_tree(new.meta)
                      WHERE atom IS NOT NULL), '')
            || ' ' ||
            coalesce((SELECT group_concat(value, ' ') FROM json_tree(new.embedded)
                      WHERE atom IS NOT NULL), '')
        WHERE rowid = new.id;
    END;
    CREATE TRIGGER assets_fts_ad AFTER DELETE ON assets
        WHEN NOT EXISTS (SELECT 1 FROM state WHERE key = 'deferred_words') BEGIN
        DELETE FROM assets_fts WHERE rowid = old.id;
    END;
    CREATE TRIGGER assets_changed_ai AFTER INSERT ON assets
        WHEN NOT EXISTS (SELECT 1 FROM state WHERE key = 'deferred_words') BEGIN
        UPDATE state SET value = CAST(value AS INTEGER) + 1 WHERE key = 'assets_epoch';
        INSERT INTO asset_changes SELECT new.id, CAST(value AS INTEGER) FROM state WHERE key = 'assets_epoch'
            ON CONFLICT(asset_id) DO UPDATE SET epoch = excluded.epoch;
    END;
    CREATE TRIGGER assets_changed_au AFTER UPDATE ON assets
        WHEN NOT EXISTS (SELECT 1 FROM state WHERE key = 'deferred_words') BEGIN
        UPDATE state SET value = CAST(value AS INTEGER) + 1 WHERE key = 'assets_epoch';
        INSERT INTO asset_changes SELECT x.id, CAST(value AS INTEGER) FROM state,
            (SELECT new.id AS id UNION SELECT old.id) x WHERE key = 'assets_epoch'
            ON CONFLICT(asset_id) DO UPDATE SET epoch = excluded.epoch;
    END;
    CREATE TRIGGER assets_changed_ad AFTER DELETE ON assets
        WHEN NOT EXISTS (SELECT 1 FROM state WHERE key = 'deferred_words') BEGIN
        UPDATE state SET value = CAST(value AS INTEGER) + 1 WHERE key = 'assets_epoch';
        INSERT INTO asset_changes SELECT old.id, CAST(value AS INTEGER) FROM state WHERE key = 'assets_epoch'
            ON CONFLICT(asset_id) DO UPDATE SET epoch = excluded.epoch;
    END;
    -- New assets need no note: their ids are above the largest id when the transaction began,
    -- which the state key 'deferred_words' holds (a note per row was a third of an import).
    -- (NOT EXISTS, not INSERT OR IGNORE: deleting an original sets its copies' duplicate_of to
    -- NULL, and SQLite runs the update triggers of that foreign-key action with ABORT.)
    CREATE TRIGGER assets_touched_au AFTER UPDATE ON assets
        WHEN EXISTS (SELECT 1 FROM state WHERE key = 'deferred_words') BEGIN
        INSERT INTO touched SELECT 'assets', x.id FROM (SELECT old.id AS id UNION SELECT new.id) x
            WHERE NOT EXISTS (SELECT 1 FROM touched WHERE room = 'assets' AND asset_id = x.id);
    END;
    CREATE TRIGGER assets_touched_ad AFTER DELETE ON assets
        WHEN EXISTS (SELECT 1 FROM state WHERE key = 'deferred_words') BEGIN
        INSERT INTO touched SELECT 'assets', old.id
            WHERE NOT EXISTS (SELECT 1 FROM touched WHERE room = 'assets' AND asset_id = old.id);
    END;
"""

# The state key that defers the upkeep, holding the largest asset id when the transaction began.
BEGIN_DEFERRED = "INSERT OR REPLACE INTO state SELECT 'deferred_words', coalesce(max(id), 0) FROM assets"

# What a transaction with deferred words runs before it commits. New assets are noted first;
# an asset noted in `assets` gets
# its whole document again (name, tags, meta), or loses it if it was deleted; one noted in
# `tags` only its tags. Any note moves the filter caches' epoch once and logs the asset.
CATCH_UP_WORDS = (
    """INSERT OR IGNORE INTO touched SELECT 'assets', id FROM assets
    WHERE id > (SELECT CAST(value AS INTEGER) FROM state WHERE key = 'deferred_words')""",
    # (Assets new in this transaction have no document yet: only older ones can lose theirs.)
    """DELETE FROM assets_fts WHERE rowid IN (SELECT asset_id FROM touched WHERE room = 'assets'
        AND asset_id <= (SELECT CAST(value AS INTEGER) FROM state WHERE key = 'deferred_words'))""",
    # (An empty object has no words: json_tree is not opened for it, as for most imported assets.)
    """INSERT INTO assets_fts(rowid, name, tags, meta)
    SELECT id, replace(uri, rtrim(uri, replace(uri, '/', '')), ''),
        coalesce((SELECT group_concat(tag, ' ') FROM tags WHERE asset_id = assets.id), ''),
        CASE WHEN assets.meta = '{}' THEN '' ELSE coalesce((SELECT group_concat(value, ' ')
            FROM json_tree(assets.meta) WHERE atom IS NOT NULL), '') END
        || ' ' ||
        CASE WHEN assets.embedded = '{}' THEN '' ELSE coalesce((SELECT group_concat(value, ' ')
            FROM json_tree(assets.embedded) WHERE atom IS NOT NULL), '') END
    FROM assets WHERE id IN (SELECT asset_id FROM touched WHERE room = 'assets')""",
    """UPDATE assets_fts SET tags = coalesce(
        (SELECT group_concat(tag, ' ') FROM tags WHERE asset_id = assets_fts.rowid), '')
    WHERE rowid IN (SELECT asset_id FROM touched WHERE room = 'tags')
        AND rowid NOT IN (SELECT asset_id FROM touched WHERE room = 'assets')""",
    """UPDATE state SET value = CAST(value AS INTEGER) + 1
    WHERE key = 'assets_epoch' AND EXISTS (SELECT 1 FROM touched WHERE room IN ('assets', 'tags'))""",
    """INSERT INTO asset_changes
    SELECT DISTINCT asset_id, (SELECT CAST(value AS INTEGER) FROM state WHERE key = 'assets_epoch')
    FROM touched WHERE room IN ('assets', 'tags')
    ON CONFLICT(asset_id) DO UPDATE SET epoch = excluded.epoch""",
    "DELETE FROM ocr_fts WHERE rowid IN (SELECT asset_id FROM touched WHERE room = 'ocr')",
    """INSERT INTO ocr_fts(rowid, text)
    SELECT asset_id, group_concat(text, char(10)) FROM ocr_lines
    WHERE asset_id IN (SELECT asset_id FROM touched WHERE room = 'ocr') GROUP BY asset_id""",
    "DELETE FROM touched",
    "DELETE FROM state WHERE key = 'deferred_words'",
)
