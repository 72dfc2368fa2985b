"""The schema of the library database: ``MIGRATIONS``, one SQL script per schema version (``PRAGMA
user_version`` records how many were applied), and :func:`_split_sql`, which cuts a script into
statements for :meth:`search.store.base.StoreBase._migrate` to run one by one, and the SQL functions
migrations call (:data:`SQL_FUNCTIONS`, registered on every connection).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import numpy as np

from assetlens.search.store.bulk_upkeep import BULK_ASSETS, BULK_WORDS


def _float32_to_float16(blob: bytes) -> bytes:
    return np.frombuffer(blob, dtype="<f4").astype("<f2").tobytes()


# Python functions migrations call by name, with their argument count.
SQL_FUNCTIONS: dict[str, tuple[int, Callable[..., bytes | str | int | float | None]]] = {
    "assetlens_float32_to_float16": (1, _float32_to_float16),
}

# Each entry upgrades the schema by one version; PRAGMA user_version records how far we are.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE assets (
        id INTEGER PRIMARY KEY,
        uri TEXT NOT NULL UNIQUE,
        content_hash TEXT,
        kind TEXT CHECK (kind IN ('image', 'video', 'audio')),
        mime TEXT,
        size INTEGER NOT NULL,
        mtime REAL NOT NULL,
        width INTEGER,
        height INTEGER,
        duration REAL,
        created TEXT,
        ingested_at TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
        error TEXT,
        duplicate_of INTEGER REFERENCES assets(id) ON DELETE SET NULL,
        meta TEXT NOT NULL DEFAULT '{}',
        embedded TEXT NOT NULL DEFAULT '{}',
        exif TEXT NOT NULL DEFAULT '{}',
        xmp TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX assets_hash ON assets(content_hash);
    CREATE INDEX assets_kind ON assets(kind, status);
    -- AUTOINCREMENT: vector ids are FAISS ids and must never be reused after a delete.
    CREATE TABLE vectors (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        asset_id INTEGER NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
        t REAL,
        model TEXT NOT NULL,
        vector BLOB NOT NULL
    );
    CREATE INDEX vectors_asset ON vectors(asset_id);
    CREATE TABLE tags (
        asset_id INTEGER NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
        tag TEXT NOT NULL,
        score REAL NOT NULL,
        source TEXT NOT NULL CHECK (source IN ('clip', 'user', 'import')),
        model TEXT,
        t REAL,
        PRIMARY KEY (asset_id, source, tag)
    );
    CREATE INDEX tags_tag ON tags(tag, score);
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        args TEXT NOT NULL DEFAULT '{}',
        counts TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE failures (
        id INTEGER PRIMARY KEY,
        job_id INTEGER REFERENCES jobs(id) ON DELETE CASCADE,
        uri TEXT NOT NULL,
        stage TEXT NOT NULL,
        reason TEXT NOT NULL,
        at TEXT NOT NULL
    );
    CREATE INDEX failures_job ON failures(job_id);
    CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO state VALUES ('vector_epoch', '0');
    -- Any vector delete invalidates a FAISS index built before it: the epoch tells.
    CREATE TRIGGER vectors_deleted AFTER DELETE ON vectors BEGIN
        UPDATE state SET value = CAST(value AS INTEGER) + 1 WHERE key = 'vector_epoch';
    END;
    """,
    """
    ALTER TABLE assets ADD COLUMN media TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE assets ADD COLUMN poster_t REAL;
    ALTER TABLE assets ADD COLUMN transcript_model TEXT;
    CREATE TABLE segments (
        id INTEGER PRIMARY KEY,
        asset_id INTEGER NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
        start REAL NOT NULL,
        end REAL NOT NULL,
        text TEXT NOT NULL,
        words TEXT NOT NULL DEFAULT '[]',
        language TEXT,
        confidence REAL
    );
    CREATE INDEX segments_asset ON segments(asset_id, start);
    CREATE VIRTUAL TABLE segments_fts USING fts5(
        text, content='segments', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
    );
    -- External-content FTS: these triggers keep the full-text index equal to the segments table.
    CREATE TRIGGER segments_ai AFTER INSERT ON segments BEGIN
        INSERT INTO segments_fts(rowid, text) VALUES (new.id, new.text);
    END;
    CREATE TRIGGER segments_ad AFTER DELETE ON segments BEGIN
        INSERT INTO segments_fts(segments_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END;
    CREATE TRIGGER segments_au AFTER UPDATE ON segments BEGIN
        INSERT INTO segments_fts(segments_fts, rowid, text) VALUES ('delete', old.id, old.text);
        INSERT INTO segments_fts(rowid, text) VALUES (new.id, new.text);
    END;
    """,
    """
    -- Words of each asset for lexical search: file name, tags, and the values of its user meta
    -- and embedded metadata. Triggers keep it equal to the tables it is derived from.
    CREATE VIRTUAL TABLE assets_fts USING fts5(name, tags, meta, tokenize='unicode61 remove_diacritics 2');
    INSERT INTO assets_fts(rowid, name, tags, meta)
        SELECT id, replace(uri, rtrim(uri, replace(uri, '/', '')), ''),
               (SELECT group_concat(tag, ' ') FROM tags WHERE asset_id = assets.id),
               (SELECT group_concat(value, ' ') FROM json_tree(assets.meta) WHERE atom IS NOT NULL) || ' ' ||
               (SELECT group_concat(value, ' ') FROM json_tree(assets.embedded) WHERE atom IS NOT NULL)
        FROM assets;
    CREATE TRIGGER assets_fts_ai AFTER INSERT ON assets BEGIN
        INSERT INTO assets_fts(rowid, name, tags, meta) VALUES (
            new.id, replace(new.uri, rtrim(new.uri, replace(new.uri, '/', '')), ''), '',
            coalesce((SELECT group_concat(value, ' ') FROM json_tree(new.meta)
                      WHERE atom IS NOT NULL), '')
            || ' ' ||
            coalesce((SELECT group_concat(value, ' ') FROM json_tree(new.embedded)
                      WHERE atom IS NOT NULL), ''));
    END;
    CREATE TRIGGER assets_fts_au AFTER UPDATE OF uri, meta, embedded ON assets BEGIN
        UPDATE assets_fts SET
            name = replace(new.uri, rtrim(new.uri, replace(new.uri, '/', '')), ''),
            meta = coalesce((SELECT group_concat(value, ' ') FROM json_tree(new.meta)
                             WHERE atom IS NOT NULL), '')
                || ' ' ||
                coalesce((SELECT group_concat(value, ' ') FROM json_tree(new.embedded)
                          WHERE atom IS NOT NULL), '')
        WHERE rowid = new.id;
    END;
    CREATE TRIGGER assets_fts_ad AFTER DELETE ON assets BEGIN
        DELETE FROM assets_fts WHERE rowid = old.id;
    END;
    CREATE TRIGGER tags_fts_ai AFTER INSERT ON tags BEGIN
        UPDATE assets_fts SET tags = (SELECT group_concat(tag, ' ') FROM tags WHERE asset_id = new.asset_id)
        WHERE rowid = new.asset_id;
    END;
    CREATE TRIGGER tags_fts_ad AFTER DELETE ON tags BEGIN
        UPDATE assets_fts SET tags = coalesce(
            (SELECT group_concat(tag, ' ') FROM tags WHERE asset_id = old.asset_id), '')
        WHERE rowid = old.asset_id;
    END;
    """,
    """
    -- HTTP API keys (search.api): only a SHA-256 of each key is kept; the key is shown once.
    CREATE TABLE api_keys (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL DEFAULT '',
        key_hash TEXT NOT NULL UNIQUE,
        scopes TEXT NOT NULL,
        created_at TEXT NOT NULL,
        revoked_at TEXT,
        last_used_at TEXT
    );
    CREATE INDEX jobs_kind ON jobs(kind, id);
    """,
    """
    -- Filter caches (search.filters.columns) re-read only what changed: every change to an asset or its
    -- tags bumps assets_epoch and records the asset with that epoch (an upsert, so the log holds
    -- one row per asset, and an outer INSERT OR IGNORE cannot make the trigger skip it).
    INSERT OR IGNORE INTO state VALUES ('assets_epoch', '0');
    CREATE TABLE asset_changes (asset_id INTEGER PRIMARY KEY, epoch INTEGER NOT NULL);
    CREATE INDEX asset_changes_epoch ON asset_changes(epoch);
    CREATE TRIGGER assets_changed_ai AFTER INSERT ON assets BEGIN
        UPDATE state SET value = CAST(value AS INTEGER) + 1 WHERE key = 'assets_epoch';
        INSERT INTO asset_changes SELECT new.id, CAST(value AS INTEGER) FROM state WHERE key = 'assets_epoch'
            ON CONFLICT(asset_id) DO UPDATE SET epoch = excluded.epoch;
    END;
    CREATE TRIGGER assets_changed_au AFTER UPDATE ON assets BEGIN
        UPDATE state SET value = CAST(value AS INTEGER) + 1 WHERE key = 'assets_epoch';
        INSERT INTO asset_changes SELECT x.id, CAST(value AS INTEGER) FROM state,
            (SELECT new.id AS id UNION SELECT old.id) x WHERE key = 'assets_epoch'
            ON CONFLICT(asset_id) DO UPDATE SET epoch = excluded.epoch;
    END;
    CREATE TRIGGER assets_changed_ad AFTER DELETE ON assets BEGIN
        UPDATE state SET value = CAST(value AS INTEGER) + 1 WHERE key = 'assets_epoch';
        INSERT INTO asset_changes SELECT old.id, CAST(value AS INTEGER) FROM state WHERE key = 'assets_epoch'
            ON CONFLICT(asset_id) DO UPDATE SET epoch = excluded.epoch;
    END;
    CREATE TRIGGER tags_changed_ai AFTER INSERT ON tags BEGIN
        UPDATE state SET value = CAST(value AS INTEGER) + 1 WHERE key = 'assets_epoch';
        INSERT INTO asset_changes SELECT new.asset_id, CAST(value AS INTEGER) FROM state
            WHERE key = 'assets_epoch' ON CONFLICT(asset_id) DO UPDATE SET epoch = excluded.epoch;
    END;
    CREATE TRIGGER tags_changed_au AFTER UPDATE ON tags BEGIN
        UPDATE state SET value = CAST(value AS INTEGER) + 1 WHERE key = 'assets_epoch';
        INSERT INTO asset_changes SELECT x.id, CAST(value AS INTEGER) FROM state,
            (SELECT new.asset_id AS id UNION SELECT old.asset_id) x WHERE key = 'assets_epoch'
            ON CONFLICT(asset_id) DO UPDATE SET epoch = excluded.epoch;
    END;
    CREATE TRIGGER tags_changed_ad AFTER DELETE ON tags BEGIN
        UPDATE state SET value = CAST(value AS INTEGER) + 1 WHERE key = 'assets_epoch';
        INSERT INTO asset_changes SELECT old.asset_id, CAST(value AS INTEGER) FROM state
            WHERE key = 'assets_epoch' ON CONFLICT(asset_id) DO UPDATE SET epoch = excluded.epoch;
    END;
    """,
    """
    -- Issue 12 (vectors): vectors are stored as float16, half the bytes of float32 (a cosine of
    -- at least 0.99999 to the float32 original for unit vectors). Every earlier vector is float32.
    UPDATE vectors SET vector = assetlens_float32_to_float16(vector);
    """,
    """
    -- OCR (issue 13): lines of text read in images and video keyframes (t: the frame's time),
    -- their box as fractions of the picture (x0, y0, x1, y1) and the reader's confidence.
    -- ocr_reads records every asset that was read, with the reader's cache key, so assets
    -- without any text are not read again by `assetlens ocr --missing`.
    CREATE TABLE ocr_lines (
        id INTEGER PRIMARY KEY,
        asset_id INTEGER NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
        t REAL,
        text TEXT NOT NULL,
        x0 REAL NOT NULL,
        y0 REAL NOT NULL,
        x1 REAL NOT NULL,
        y1 REAL NOT NULL,
        confidence REAL NOT NULL,
        model TEXT NOT NULL
    );
    CREATE INDEX ocr_lines_asset ON ocr_lines(asset_id, t);
    CREATE TABLE ocr_reads (
        asset_id INTEGER PRIMARY KEY REFERENCES assets(id) ON DELETE CASCADE,
        model TEXT NOT NULL,
        read_at TEXT NOT NULL
    );
    -- One full-text document per asset (rowid = asset id): all its lines, so that a phrase
    -- split over two lines of a sign or slide still matches. Triggers keep it equal to ocr_lines.
    CREATE VIRTUAL TABLE ocr_fts USING fts5(text, tokenize='unicode61 remove_diacritics 2');
    CREATE TRIGGER ocr_lines_ai AFTER INSERT ON ocr_lines BEGIN
        DELETE FROM ocr_fts WHERE rowid = new.asset_id;
        INSERT INTO ocr_fts(rowid, text)
            SELECT asset_id, group_concat(text, char(10)) FROM ocr_lines WHERE asset_id = new.asset_id
            GROUP BY asset_id;
    END;
    CREATE TRIGGER ocr_lines_ad AFTER DELETE ON ocr_lines BEGIN
        DELETE FROM ocr_fts WHERE rowid = old.asset_id;
        INSERT INTO ocr_fts(rowid, text)
            SELECT asset_id, group_concat(text, char(10)) FROM ocr_lines WHERE asset_id = old.asset_id
            GROUP BY asset_id;
    END;
    CREATE TRIGGER ocr_lines_au AFTER UPDATE ON ocr_lines BEGIN
        DELETE FROM ocr_fts WHERE rowid IN (old.asset_id, new.asset_id);
        INSERT INTO ocr_fts(rowid, text)
            SELECT asset_id, group_concat(text, char(10)) FROM ocr_lines
            WHERE asset_id IN (old.asset_id, new.asset_id) GROUP BY asset_id;
    END;
    """,
    BULK_WORDS,
    """
    -- Issue 15: near-duplicates and learned tags.
    -- frame_hashes: the perceptual hashes of each image and video keyframe (t: the frame's time),
    -- rows of (dHash, pHash) little-endian uint64 pairs, the whole frame first (enrich.phash).
    -- Ids only grow, so "frames above the last checked id" are the ones not yet compared.
    CREATE TABLE frame_hashes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        asset_id INTEGER NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
        t REAL,
        hashes BLOB NOT NULL
    );
    CREATE INDEX frame_hashes_asset ON frame_hashes(asset_id);
    -- near_duplicate_pairs: assets compared and found close (a < b): the median over the frames
    -- of the best CLIP cosine and of the fewest differing hash bits (of 128).
    CREATE TABLE near_duplicate_pairs (
        a INTEGER NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
        b INTEGER NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
        similarity REAL NOT NULL,
        distance INTEGER NOT NULL,
        PRIMARY KEY (a, b),
        CHECK (a < b)
    ) WITHOUT ROWID;
    CREATE INDEX near_duplicate_pairs_b ON near_duplicate_pairs(b);
    -- near_duplicates: the groups (two or more members) at the library's thresholds; group_id is
    -- the representative's id. Filters read it, so changes bump assets_epoch like tags do.
    CREATE TABLE near_duplicates (
        asset_id INTEGER PRIMARY KEY REFERENCES assets(id) ON DELETE CASCADE,
        group_id INTEGER NOT NULL
    );
    CREATE INDEX near_duplicates_group ON near_duplicates(group_id);
    CREATE TRIGGER near_duplicates_changed_ai AFTER INSERT ON near_duplicates BEGIN
        UPDATE state SET value = CAST(value AS INTEGER) + 1 WHERE key = 'assets_epoch';
        INSERT INTO asset_changes SELECT new.asset_id, CAST(value AS INTEGER) FROM state
            WHERE key = 'assets_epoch' ON CONFLICT(asset_id) DO UPDATE SET epoch = excluded.epoch;
    END;
    CREATE TRIGGER near_duplicates_changed_au AFTER UPDATE ON near_duplicates BEGIN
        UPDATE state SET value = CAST(value AS INTEGER) + 1 WHERE key = 'assets_epoch';
        INSERT INTO asset_changes SELECT x.id, CAST(value AS INTEGER) FROM state,
            (SELECT new.asset_id AS id UNION SELECT old.asset_id) x WHERE key = 'assets_epoch'
            ON CONFLICT(asset_id) DO UPDATE SET epoch = excluded.epoch;
    END;
    -- A member leaving (deleted, regrouped) may leave one asset alone: one is not a group.
    -- (Triggers do not fire from inside a trigger: the lone member's change is logged here.)
    CREATE TRIGGER near_duplicates_changed_ad AFTER DELETE ON near_duplicates BEGIN
        UPDATE state SET value = CAST(value AS INTEGER) + 1 WHERE key = 'assets_epoch';
        INSERT INTO asset_changes SELECT x.id, CAST(s.value AS INTEGER) FROM state s,
            (SELECT old.asset_id AS id UNION SELECT d.asset_id FROM near_duplicates d
             WHERE d.group_id = old.group_id
               AND (SELECT count(*) FROM near_duplicates WHERE group_id = old.group_id) < 2) x
            WHERE s.key = 'assets_epoch' ON CONFLICT(asset_id) DO UPDATE SET epoch = excluded.epoch;
        DELETE FROM near_duplicates WHERE group_id = old.group_id
            AND (SELECT count(*) FROM near_duplicates WHERE group_id = old.group_id) < 2;
    END;
    -- Tags gain the source 'learned' (a CHECK cannot be altered: the table is rebuilt, with its
    -- index and the triggers of the full-text index and of the filter caches).
    CREATE TABLE tags_rebuilt (
        asset_id INTEGER NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
        tag TEXT NOT NULL,
        score REAL NOT NULL,
        source TEXT NOT NULL CHECK (source IN ('clip', 'user', 'import', 'learned')),
        model TEXT,
        t REAL,
        PRIMARY KEY (asset_id, source, tag)
    );
    INSERT INTO tags_rebuilt SELECT asset_id, tag, score, source, model, t FROM tags;
    DROP TABLE tags;
    ALTER TABLE tags_rebuilt RENAME TO tags;
    CREATE INDEX tags_tag ON tags(tag, score);
    -- (Recreated as the bulk-writes migration left them: per-row upkeep unless a transaction
    -- defers the words, then only a note in `touched`.)
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
    -- learned_tags: a classifier fitted on the vectors of example assets (search.learned), the
    -- model it was fitted on, and its cross-validated report; its examples keep it retrainable.
    CREATE TABLE learned_tags (
        name TEXT PRIMARY KEY,
        model TEXT NOT NULL,
        method TEXT NOT NULL,
        weights BLOB NOT NULL,
        bias REAL NOT NULL,
        threshold REAL NOT NULL,
        replaces_vocabulary INTEGER NOT NULL DEFAULT 0,
        report TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL,
        trained_at TEXT NOT NULL
    );
    CREATE TABLE learned_tag_examples (
        name TEXT NOT NULL REFERENCES learned_tags(name) ON DELETE CASCADE ON UPDATE CASCADE,
        asset_id INTEGER NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
        positive INTEGER NOT NULL CHECK (positive IN (0, 1)),
        PRIMARY KEY (name, asset_id)
    ) WITHOUT ROWID;
    CREATE INDEX learned_tag_examples_asset ON learned_tag_examples(asset_id);
    """,
    BULK_ASSETS,
)


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements (triggers contain ';' inside BEGIN ... END)."""
    statements, buffer = [], ""
    for line in script.splitlines(keepends=True):
        if line.strip().startswith("--"):
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    return [s for s in statements if s]
