"""The SQLite store: schema, migrations and every SQL statement of AssetLens.

SQLite is the source of truth (the FAISS index is derived from it). The database runs in WAL
mode so searches read while an ingest writes; writers group their work with
:meth:`Store.transaction`, one transaction per batch, so a crash loses at most the batch in
flight and never leaves half an asset behind.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from search.errors import AssetNotFoundError, ModelMismatchError, StoreError

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
    -- Filter caches (search.columns) re-read only what changed: every change to an asset or its
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
)

ASSET_COLUMNS = (
    "id, uri, content_hash, kind, mime, size, mtime, width, height, duration, created, "
    "ingested_at, status, error, duplicate_of, meta, embedded, exif, xmp, media, poster_t, transcript_model"
)


@dataclass(frozen=True)
class Asset:
    """One row of ``assets``, with its JSON columns decoded."""

    id: int
    uri: str
    content_hash: str | None
    kind: str | None
    mime: str | None
    size: int
    mtime: float
    width: int | None
    height: int | None
    duration: float | None
    created: str | None
    ingested_at: str
    status: str
    error: str | None
    duplicate_of: int | None
    meta: dict[str, Any] = field(default_factory=dict)
    embedded: dict[str, Any] = field(default_factory=dict)
    exif: dict[str, Any] = field(default_factory=dict)
    xmp: dict[str, Any] = field(default_factory=dict)
    media: dict[str, Any] = field(default_factory=dict)
    poster_t: float | None = None
    transcript_model: str | None = None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Asset:
        values = dict(row)
        for key in ("meta", "embedded", "exif", "xmp", "media"):
            values[key] = json.loads(values[key])
        return cls(**values)


@dataclass(frozen=True)
class Tag:
    """One tag of an asset."""

    tag: str
    score: float
    source: str
    model: str | None = None
    t: float | None = None


def now_iso() -> str:
    """Current UTC time as ISO 8601 (seconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Store:
    """A connection to one library's SQLite file.

    Args:
        path: The database file; created (with its folder) if missing.
        readonly: Open without write access (for searches).
    """

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        if readonly and not self.path.exists():
            raise StoreError(f"no library at {self.path}: run `assetlens ingest PATH` first")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            uri = f"file:{self.path}?mode=ro" if readonly else f"file:{self.path}"
            self.db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA busy_timeout = 30000")
            self.db.execute("PRAGMA foreign_keys = ON")
            if not readonly:
                self.db.execute("PRAGMA journal_mode = WAL")
                # NORMAL is durable across application crashes in WAL mode; only an OS crash
                # can lose the last commits, never corrupt the file.
                self.db.execute("PRAGMA synchronous = NORMAL")
                self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the library database {self.path}: {exc}") from exc

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this AssetLens "
                f"({len(MIGRATIONS)}): upgrade AssetLens"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.transaction():
                if self.schema_version >= number:
                    continue  # another process applied it while this one waited for the write lock
                for statement in _split_sql(script):
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {number}")

    @property
    def schema_version(self) -> int:
        """Schema version of the open file."""
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic write: everything inside commits together or not at all."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException:
            # A full disk makes SQLite roll back by itself: a second ROLLBACK would then fail
            # with "no transaction is active" and hide the real error.
            if self.db.in_transaction:
                with suppress(sqlite3.Error):
                    self.db.execute("ROLLBACK")
            raise

    # --- state -----------------------------------------------------------------------------

    def get_state(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_state(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (key, value))

    @property
    def vector_epoch(self) -> int:
        """Grows with every vector delete; an index built at another epoch is stale."""
        return int(self.get_state("vector_epoch") or 0)

    @property
    def model_id(self) -> str | None:
        """The model whose vectors this store holds (None while it holds none)."""
        return self.get_state("model")

    def ensure_model(self, model_id: str) -> None:
        """Refuse a model other than the store's; adopt it when the store has no vectors yet.

        Raises:
            ModelMismatchError: The store holds vectors of another model.
        """
        current = self.model_id
        if current == model_id:
            return
        if current is not None and self.count_vectors() > 0:
            raise ModelMismatchError(
                f"this library holds vectors of model {current}, not {model_id}: vectors of two "
                f"models cannot be mixed. Use the library's model (ASSETLENS_CLIP_MODEL), or "
                f"switch the whole library with `assetlens reembed` (re-encodes every asset)"
            )
        self.set_state("model", model_id)

    # --- assets ----------------------------------------------------------------------------

    def asset(self, asset_id: int) -> Asset:
        """The asset with this id.

        Raises:
            AssetNotFoundError: No such asset.
        """
        row = self.db.execute(f"SELECT {ASSET_COLUMNS} FROM assets WHERE id = ?", (asset_id,)).fetchone()
        if row is None:
            raise AssetNotFoundError(f"no asset with id {asset_id}")
        return Asset.from_row(row)

    def asset_by_uri(self, uri: str) -> Asset | None:
        row = self.db.execute(f"SELECT {ASSET_COLUMNS} FROM assets WHERE uri = ?", (uri,)).fetchone()
        return None if row is None else Asset.from_row(row)

    def assets_by_hash(self, content_hash: str) -> list[Asset]:
        """Embedded assets (ok, with vectors) holding this content, oldest first."""
        rows = self.db.execute(
            f"SELECT {ASSET_COLUMNS} FROM assets WHERE content_hash = ? AND status = 'ok' "
            "AND EXISTS (SELECT 1 FROM vectors WHERE asset_id = assets.id) ORDER BY id",
            (content_hash,),
        ).fetchall()
        return [Asset.from_row(r) for r in rows]

    def embedded_hashes(self) -> set[str]:
        """Content hashes of every embedded asset (to reuse vectors for renames and duplicates)."""
        return {
            r[0]
            for r in self.db.execute(
                "SELECT DISTINCT content_hash FROM assets WHERE status = 'ok' "
                "AND content_hash IS NOT NULL AND id IN (SELECT asset_id FROM vectors)"
            )
        }

    def has_vectors(self, asset_id: int) -> bool:
        return (
            self.db.execute("SELECT 1 FROM vectors WHERE asset_id = ? LIMIT 1", (asset_id,)).fetchone()
            is not None
        )

    def assets(self, ids: Sequence[int]) -> dict[int, Asset]:
        """Assets by id (missing ids are absent from the result)."""
        out: dict[int, Asset] = {}
        for chunk in _chunks(list(ids), 500):
            marks = ",".join("?" * len(chunk))
            for row in self.db.execute(f"SELECT {ASSET_COLUMNS} FROM assets WHERE id IN ({marks})", chunk):
                out[row["id"]] = Asset.from_row(row)
        return out

    def assets_with_sound(self) -> list[Asset]:
        """Every ok audio asset and ok video with an audio stream."""
        rows = self.db.execute(
            f"SELECT {ASSET_COLUMNS} FROM assets WHERE status = 'ok' AND (kind = 'audio' OR "
            "(kind = 'video' AND json_extract(media, '$.has_audio'))) ORDER BY id"
        )
        return [Asset.from_row(r) for r in rows]

    def uris(self) -> list[tuple[int, str]]:
        """Every (id, uri), for pruning."""
        return [(r[0], r[1]) for r in self.db.execute("SELECT id, uri FROM assets ORDER BY id")]

    def upsert_asset(self, values: dict[str, Any]) -> int:
        """Insert an asset or replace the row with the same uri; returns its id.

        JSON columns may be given as dicts. On replace the id (and so the user's ``meta``) is kept.
        """
        values = {k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in values.items()}
        values.setdefault("ingested_at", now_iso())
        existing = self.db.execute("SELECT id FROM assets WHERE uri = ?", (values["uri"],)).fetchone()
        if existing is None:
            cols = ", ".join(values)
            marks = ", ".join("?" * len(values))
            cur = self.db.execute(f"INSERT INTO assets ({cols}) VALUES ({marks})", list(values.values()))
            return int(cur.lastrowid or 0)
        self.update_asset(int(existing[0]), values)
        return int(existing[0])

    def update_asset(self, asset_id: int, values: dict[str, Any]) -> None:
        """Set some columns of an asset (column names come from our code, never from users)."""
        values = {k: (json.dumps(v) if isinstance(v, dict) else v) for k, v in values.items()}
        assignments = ", ".join(f"{k} = ?" for k in values)
        self.db.execute(f"UPDATE assets SET {assignments} WHERE id = ?", [*values.values(), asset_id])

    def delete_asset(self, asset_id: int) -> None:
        """Delete an asset with its vectors and tags."""
        self.db.execute("DELETE FROM assets WHERE id = ?", (asset_id,))

    def count_assets(self) -> dict[str, int]:
        """Asset counts by kind (ok assets) plus ``failed``."""
        counts = {
            str(kind): int(n)
            for kind, n in self.db.execute(
                "SELECT kind, count(*) FROM assets WHERE status = 'ok' GROUP BY kind"
            )
        }
        counts["failed"] = int(
            self.db.execute("SELECT count(*) FROM assets WHERE status = 'failed'").fetchone()[0]
        )
        return counts

    # --- vectors ---------------------------------------------------------------------------

    def replace_vectors(
        self, asset_id: int, model_id: str, vectors: np.ndarray, times: Sequence[float | None]
    ) -> list[int]:
        """Replace an asset's vectors; returns the new vector ids (FAISS ids)."""
        self.ensure_model(model_id)
        self.db.execute("DELETE FROM vectors WHERE asset_id = ?", (asset_id,))
        ids = []
        for vector, t in zip(vectors, times, strict=True):
            cur = self.db.execute(
                "INSERT INTO vectors (asset_id, t, model, vector) VALUES (?, ?, ?, ?)",
                (asset_id, t, model_id, np.asarray(vector, dtype=np.float32).tobytes()),
            )
            ids.append(int(cur.lastrowid or 0))
        return ids

    def copy_enrichment(self, source_id: int, target_id: int) -> None:
        """Give ``target_id`` the vectors, model tags and transcript of ``source_id`` (exact duplicates)."""
        self.db.execute("DELETE FROM vectors WHERE asset_id = ?", (target_id,))
        self.db.execute(
            "INSERT INTO vectors (asset_id, t, model, vector) "
            "SELECT ?, t, model, vector FROM vectors WHERE asset_id = ? ORDER BY id",
            (target_id, source_id),
        )
        self.db.execute("DELETE FROM tags WHERE asset_id = ? AND source = 'clip'", (target_id,))
        self.db.execute(
            "INSERT INTO tags (asset_id, tag, score, source, model, t) "
            "SELECT ?, tag, score, source, model, t FROM tags WHERE asset_id = ? AND source = 'clip'",
            (target_id, source_id),
        )
        self.db.execute("DELETE FROM segments WHERE asset_id = ?", (target_id,))
        self.db.execute(
            "INSERT INTO segments (asset_id, start, end, text, words, language, confidence) "
            "SELECT ?, start, end, text, words, language, confidence FROM segments "
            "WHERE asset_id = ? ORDER BY id",
            (target_id, source_id),
        )
        self.db.execute(
            "UPDATE assets SET transcript_model = "
            "(SELECT transcript_model FROM assets WHERE id = ?) WHERE id = ?",
            (source_id, target_id),
        )

    def count_vectors(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM vectors").fetchone()[0])

    def max_vector_id(self) -> int:
        return int(self.db.execute("SELECT coalesce(max(id), 0) FROM vectors").fetchone()[0])

    def iter_vectors(
        self, after_id: int = 0, batch: int = 8192, upto_id: int | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Stream ``(ids, vectors)`` in id order, for building or catching up the index."""
        last = after_id
        limit = upto_id if upto_id is not None else self.max_vector_id()
        while True:
            rows = self.db.execute(
                "SELECT id, vector FROM vectors WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
                (last, limit, batch),
            ).fetchall()
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            vectors = np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
            yield ids, vectors
            last = int(ids[-1])

    def vectors_of(self, asset_id: int) -> tuple[np.ndarray, list[float | None]]:
        """An asset's vectors and their times."""
        found = self.vectors_by_asset([asset_id]).get(asset_id)
        if found is None:
            raise AssetNotFoundError(f"asset {asset_id} has no vectors (it failed or is not stored)")
        return found

    def vector_owners(self, vector_ids: Sequence[int]) -> dict[int, tuple[int, float | None]]:
        """Map vector ids to (asset id, t); ids no longer in the store are absent."""
        out: dict[int, tuple[int, float | None]] = {}
        for chunk in _chunks([int(i) for i in vector_ids], 500):
            marks = ",".join("?" * len(chunk))
            for vid, aid, t in self.db.execute(
                f"SELECT id, asset_id, t FROM vectors WHERE id IN ({marks})", chunk
            ):
                out[int(vid)] = (int(aid), t)
        return out

    def embedded_asset_ids(self) -> list[int]:
        """Ids of every asset that has vectors."""
        return [int(r[0]) for r in self.db.execute("SELECT DISTINCT asset_id FROM vectors ORDER BY 1")]

    def vectors_by_asset(self, asset_ids: Sequence[int]) -> dict[int, tuple[np.ndarray, list[float | None]]]:
        """Vectors and times of several assets (assets without vectors are absent)."""
        grouped: dict[int, tuple[list[np.ndarray], list[float | None]]] = {}
        for chunk in _chunks(list(asset_ids), 500):
            marks = ",".join("?" * len(chunk))
            for aid, blob, t in self.db.execute(
                f"SELECT asset_id, vector, t FROM vectors WHERE asset_id IN ({marks}) ORDER BY id",
                chunk,
            ):
                vectors, times = grouped.setdefault(int(aid), ([], []))
                vectors.append(np.frombuffer(blob, dtype=np.float32))
                times.append(t)
        return {aid: (np.stack(v), t) for aid, (v, t) in grouped.items()}

    def reset_model(self, model_id: str) -> None:
        """Drop every vector and model tag and adopt ``model_id`` (the start of a re-embed)."""
        self.db.execute("DELETE FROM vectors")
        self.db.execute("DELETE FROM tags WHERE source = 'clip'")
        self.set_state("model", model_id)

    # --- tags ------------------------------------------------------------------------------

    def replace_tags(self, asset_id: int, source: str, tags: Sequence[Tag]) -> None:
        """Replace the tags of one source (``clip``, ``user``, ``import``) on an asset."""
        self.db.execute("DELETE FROM tags WHERE asset_id = ? AND source = ?", (asset_id, source))
        self.db.executemany(
            "INSERT INTO tags (asset_id, tag, score, source, model, t) VALUES (?, ?, ?, ?, ?, ?)",
            [(asset_id, t.tag, t.score, source, t.model, t.t) for t in tags],
        )

    def tags_of(self, asset_ids: Sequence[int]) -> dict[int, list[Tag]]:
        """Tags per asset, best first."""
        out: dict[int, list[Tag]] = {int(a): [] for a in asset_ids}
        for chunk in _chunks(list(out), 500):
            marks = ",".join("?" * len(chunk))
            for row in self.db.execute(
                f"SELECT asset_id, tag, score, source, model, t FROM tags "
                f"WHERE asset_id IN ({marks}) ORDER BY score DESC, tag",
                chunk,
            ):
                out[row[0]].append(Tag(row[1], row[2], row[3], row[4], row[5]))
        return out

    def tag_counts(self, limit: int = 20) -> list[tuple[str, int]]:
        """The most frequent tags with their asset counts."""
        rows = self.db.execute(
            "SELECT tag, count(DISTINCT asset_id) AS n FROM tags GROUP BY tag ORDER BY n DESC, tag LIMIT ?",
            (limit,),
        )
        return [(r[0], int(r[1])) for r in rows]

    # --- transcripts -----------------------------------------------------------------------

    def replace_segments(self, asset_id: int, model: str | None, segments: Sequence[dict[str, Any]]) -> None:
        """Replace an asset's transcript; ``model`` None marks it as not transcribed."""
        self.db.execute("DELETE FROM segments WHERE asset_id = ?", (asset_id,))
        self.db.executemany(
            "INSERT INTO segments (asset_id, start, end, text, words, language, confidence) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    asset_id,
                    s["start"],
                    s["end"],
                    s["text"],
                    json.dumps(s.get("words", [])),
                    s.get("language"),
                    s.get("confidence"),
                )
                for s in segments
            ],
        )
        self.db.execute("UPDATE assets SET transcript_model = ? WHERE id = ?", (model, asset_id))

    def segments_of(self, asset_id: int) -> list[dict[str, Any]]:
        """An asset's transcript segments in time order."""
        rows = self.db.execute(
            "SELECT id, start, end, text, words, language, confidence FROM segments "
            "WHERE asset_id = ? ORDER BY start",
            (asset_id,),
        )
        return [{**dict(r), "words": json.loads(r["words"])} for r in rows]

    def search_segments(self, text: str, limit: int) -> list[tuple[int, dict[str, Any]]]:
        """Assets whose transcript matches ``text``, best first, with their best segment.

        The words of ``text`` are quoted one by one, so no user input is read as FTS5 syntax;
        the exact phrase ranks above the words in any order.
        """
        words = ['"' + w.replace('"', '""') + '"' for w in re.findall(r"\w+", text)]
        if not words:
            return []
        expressions = ['"' + " ".join(w.strip('"') for w in words) + '"']
        if len(words) > 1:
            expressions.append(" AND ".join(words))
        best: dict[int, dict[str, Any]] = {}
        for expression in expressions:
            rows = self.db.execute(
                "SELECT s.asset_id, s.id, s.start, s.end, s.text FROM segments_fts "
                "JOIN segments s ON s.id = segments_fts.rowid WHERE segments_fts MATCH ? "
                "ORDER BY bm25(segments_fts) LIMIT ?",
                (expression, limit * 20),
            )
            for row in rows:
                best.setdefault(row["asset_id"], {k: row[k] for k in ("id", "start", "end", "text")})
        return list(best.items())[:limit]

    def lexical_search(
        self, match: str, where: str, params: Sequence[Any], limit: int
    ) -> list[tuple[int, float, dict[str, Any] | None]]:
        """Assets whose words (name, tags, meta, transcript) match an FTS5 expression, best first.

        Args:
            match: A safe FTS5 expression (see ``search.filters.fts_query``).
            where: SQL condition over ``assets a`` (a compiled filter), with ``params``.
            limit: Most assets returned.

        Returns:
            ``(asset_id, bm25, segment)``: lower bm25 is better; ``segment`` is the best matching
            transcript segment when the transcript matched.
        """
        rows = self.db.execute(
            f"""
            WITH hits AS (
                SELECT rowid AS asset_id, bm25(assets_fts) AS rank, NULL AS segment_id
                FROM assets_fts WHERE assets_fts MATCH ?
                UNION ALL
                SELECT s.asset_id, bm25(segments_fts), s.id
                FROM segments_fts JOIN segments s ON s.id = segments_fts.rowid
                WHERE segments_fts MATCH ?
            ),
            best AS (
                SELECT asset_id, min(rank) AS rank,
                       (SELECT h2.segment_id FROM hits h2 WHERE h2.asset_id = hits.asset_id
                        AND h2.segment_id IS NOT NULL ORDER BY h2.rank LIMIT 1) AS segment_id
                FROM hits GROUP BY asset_id
            )
            SELECT b.asset_id, b.rank, s.start, s.end, s.text, s.id
            FROM best b JOIN assets a ON a.id = b.asset_id
            LEFT JOIN segments s ON s.id = b.segment_id
            WHERE {where}
            ORDER BY b.rank, b.asset_id LIMIT ?
            """,
            [match, match, *params, limit],
        )
        return [
            (
                int(r[0]),
                float(r[1]),
                None if r[5] is None else {"id": r[5], "start": r[2], "end": r[3], "text": r[4]},
            )
            for r in rows
        ]

    def vectors_by_id(self, ids: np.ndarray) -> np.ndarray:
        """Vectors by vector id, in the order given."""
        found: dict[int, np.ndarray] = {}
        for chunk in _chunks([int(i) for i in ids], 500):
            marks = ",".join("?" * len(chunk))
            for vid, blob in self.db.execute(f"SELECT id, vector FROM vectors WHERE id IN ({marks})", chunk):
                found[int(vid)] = np.frombuffer(blob, dtype=np.float32)
        if not found:
            return np.zeros((0, 0), np.float32)
        return np.stack([found[int(i)] for i in ids])

    def max_asset_id(self) -> int:
        return int(self.db.execute("SELECT coalesce(max(id), 0) FROM assets").fetchone()[0])

    def filtered_vector_ids(self, where: str, params: Sequence[Any]) -> np.ndarray:
        """Ids of the vectors whose assets pass a compiled filter."""
        rows = self.db.execute(
            f"SELECT v.id FROM vectors v JOIN assets a ON a.id = v.asset_id WHERE {where}", list(params)
        )
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def sorted_asset_ids(
        self, where: str, params: Sequence[Any], order: tuple[str, str], limit: int
    ) -> list[tuple[int, Any]]:
        """``(asset_id, value)`` of assets passing a filter.

        ``order`` is (value SQL, ORDER BY SQL), both built by our code from known fields.
        """
        rows = self.db.execute(
            f"SELECT a.id, {order[0]} FROM assets a WHERE {where} ORDER BY {order[1]} LIMIT ?",
            [*params, limit],
        )
        return [(int(r[0]), r[1]) for r in rows]

    def sample_vectors(self, size: int, seed: int = 0) -> np.ndarray:
        """Up to ``size`` vectors drawn at random (seeded) across the id range: a background sample."""
        top = self.max_vector_id()
        if top == 0:
            return np.zeros((0, 0), np.float32)
        ids = np.unique(np.random.default_rng(seed).integers(1, top + 1, size=size * 2))
        rows: list[sqlite3.Row] = []
        for chunk in _chunks([int(i) for i in ids], 500):
            marks = ",".join("?" * len(chunk))
            rows.extend(self.db.execute(f"SELECT vector FROM vectors WHERE id IN ({marks})", chunk))
        vectors = [np.frombuffer(r[0], dtype=np.float32) for r in rows[:size]]
        return np.stack(vectors) if vectors else np.zeros((0, 0), np.float32)

    # --- jobs and failures -----------------------------------------------------------------

    def start_job(self, kind: str, args: dict[str, Any]) -> int:
        cur = self.db.execute(
            "INSERT INTO jobs (kind, status, started_at, args) VALUES (?, 'running', ?, ?)",
            (kind, now_iso(), json.dumps(args)),
        )
        return int(cur.lastrowid or 0)

    def finish_job(self, job_id: int, status: str, counts: dict[str, int]) -> None:
        self.db.execute(
            "UPDATE jobs SET status = ?, finished_at = ?, counts = ? WHERE id = ?",
            (status, now_iso(), json.dumps(counts), job_id),
        )

    def job_progress(self, job_id: int, counts: dict[str, int]) -> None:
        """Record a running job's counts so far (readers such as the API show progress)."""
        self.db.execute("UPDATE jobs SET counts = ? WHERE id = ?", (json.dumps(counts), job_id))

    def record_failure(self, job_id: int, uri: str, stage: str, reason: str) -> None:
        self.db.execute(
            "INSERT INTO failures (job_id, uri, stage, reason, at) VALUES (?, ?, ?, ?, ?)",
            (job_id, uri, stage, reason, now_iso()),
        )

    def count_failures(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM failures").fetchone()[0])

    def count_transcribed(self) -> int:
        """Assets that have a transcript (possibly empty: no speech)."""
        return int(
            self.db.execute("SELECT count(*) FROM assets WHERE transcript_model IS NOT NULL").fetchone()[0]
        )

    def failures(self, job_id: int | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Recorded failures, newest first (of one job, or of all)."""
        where, params = ("WHERE job_id = ?", [job_id]) if job_id is not None else ("", [])
        rows = self.db.execute(
            f"SELECT job_id, uri, stage, reason, at FROM failures {where} ORDER BY id DESC LIMIT ?",
            [*params, limit],
        )
        return [dict(r) for r in rows]

    def last_job(self) -> dict[str, Any] | None:
        row = self.db.execute("SELECT * FROM jobs ORDER BY id DESC LIMIT 1").fetchone()
        return None if row is None else dict(row)

    # --- DAM metadata, facets and export (search.meta, search.export) -----------------------

    def asset_ids_by_hash(self, content_hash: str) -> list[int]:
        """Ids of every asset (any status) holding this content, oldest first."""
        rows = self.db.execute("SELECT id FROM assets WHERE content_hash = ? ORDER BY id", (content_hash,))
        return [int(r[0]) for r in rows]

    def meta_of(self, asset_id: int) -> dict[str, Any]:
        """An asset's user ``meta``.

        Raises:
            AssetNotFoundError: No such asset.
        """
        row = self.db.execute("SELECT meta FROM assets WHERE id = ?", (asset_id,)).fetchone()
        if row is None:
            raise AssetNotFoundError(f"no asset with id {asset_id}")
        meta = json.loads(row[0])
        return meta if isinstance(meta, dict) else {}

    def set_meta(self, asset_id: int, meta: dict[str, Any]) -> None:
        """Replace an asset's user ``meta`` (the FTS triggers re-index its words)."""
        self.db.execute(
            "UPDATE assets SET meta = ? WHERE id = ?", (json.dumps(meta, ensure_ascii=False), asset_id)
        )

    def iter_json_column(
        self, column: str, where: str = "1", params: Sequence[Any] = ()
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(asset_id, value)`` of the ``meta`` or ``embedded`` column of assets passing a filter."""
        if column not in ("meta", "embedded"):
            raise ValueError(f"not a JSON metadata column: {column}")
        last = 0
        while True:
            rows = self.db.execute(
                f"SELECT a.id, a.{column} FROM assets a WHERE a.id > ? AND ({where}) "
                "ORDER BY a.id LIMIT 1000",
                [last, *params],
            ).fetchall()
            if not rows:
                return
            for asset_id, text in rows:
                yield int(asset_id), json.loads(text)
            last = int(rows[-1][0])

    def iter_assets(
        self, where: str = "1", params: Sequence[Any] = (), batch: int = 500
    ) -> Iterator[list[Asset]]:
        """Assets passing a compiled filter, in id order, a batch at a time (keyset pages: no big result)."""
        last = 0
        while True:
            rows = self.db.execute(
                f"SELECT {', '.join('a.' + c.strip() for c in ASSET_COLUMNS.split(','))} FROM assets a "
                f"WHERE a.id > ? AND ({where}) ORDER BY a.id LIMIT ?",
                [last, *params, batch],
            ).fetchall()
            if not rows:
                return
            yield [Asset.from_row(r) for r in rows]
            last = int(rows[-1]["id"])

    def segments_by_asset(self, asset_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
        """Transcript segments (start, end, text, language) of several assets, in time order."""
        out: dict[int, list[dict[str, Any]]] = {}
        for chunk in _chunks([int(i) for i in asset_ids], 500):
            marks = ",".join("?" * len(chunk))
            for row in self.db.execute(
                f"SELECT asset_id, start, end, text, language FROM segments WHERE asset_id IN ({marks}) "
                "ORDER BY asset_id, start",
                chunk,
            ):
                out.setdefault(int(row[0]), []).append(
                    {"start": row[1], "end": row[2], "text": row[3], "language": row[4]}
                )
        return out

    def count_matching(self, where: str = "1", params: Sequence[Any] = ()) -> int:
        """How many assets pass a compiled filter."""
        row = self.db.execute(f"SELECT count(*) FROM assets a WHERE {where}", list(params)).fetchone()
        return int(row[0])

    def facet_values(
        self, value_sql: str, where: str, params: Sequence[Any], limit: int, prefix: int | None = None
    ) -> list[tuple[Any, int]]:
        """Asset counts per value of a column expression of ``assets a`` (built by our code), NULLs left out.

        Args:
            value_sql: The expression (a built-in field's SQL from ``search.filters``).
            where: A compiled filter over ``assets a``, with ``params``.
            limit: Most values returned, most frequent first (ties by value).
            prefix: Count by the first ``prefix`` characters (dates by year, month or day).
        """
        value = value_sql if prefix is None else f"substr({value_sql}, 1, {int(prefix)})"
        rows = self.db.execute(
            f"SELECT v, count(*) AS n FROM (SELECT {value} AS v FROM assets a WHERE {where}) "
            "WHERE v IS NOT NULL GROUP BY v ORDER BY n DESC, v LIMIT ?",
            [*params, limit],
        )
        return [(r[0], int(r[1])) for r in rows]

    def facet_json(
        self, path: str, where: str, params: Sequence[Any], limit: int, prefix: int | None = None
    ) -> list[tuple[str, Any, int]]:
        """Asset counts per value of a metadata field: user ``meta`` wins over ``embedded`` (as in filters).

        A list counts each of its elements (an asset once per distinct element); objects and nulls
        are left out.

        Args:
            path: The JSON path of the field (``$."camera"."make"``).
            where: A compiled filter over ``assets a``, with ``params``.
            limit: Most values returned, most frequent first (ties by value).
            prefix: Count text values by their first ``prefix`` characters (dates by year, month, day).

        Returns:
            ``(json type, value, count)``: the type is json_each's (``text``, ``integer``, ``real``,
            ``true``, ``false``).
        """
        atom = "j.atom"
        if prefix is not None:
            atom = f"CASE WHEN j.type = 'text' THEN substr(j.atom, 1, {int(prefix)}) ELSE j.atom END"
        rows = self.db.execute(
            f"SELECT j.type, {atom} AS v, count(DISTINCT a.id) AS n FROM assets a, "
            "json_each(coalesce(a.meta -> ?, a.embedded -> ?)) j "
            f"WHERE ({where}) AND j.type NOT IN ('null', 'object', 'array') "
            "AND (j.key IS NULL OR typeof(j.key) = 'integer') "
            "GROUP BY j.type, v ORDER BY n DESC, v LIMIT ?",
            [path, path, *params, limit],
        )
        return [(str(r[0]), r[1], int(r[2])) for r in rows]

    def facet_tags(self, where: str, params: Sequence[Any], limit: int) -> list[tuple[str, int]]:
        """Asset counts per tag (any source) among the assets passing a compiled filter."""
        rows = self.db.execute(
            f"SELECT t.tag, count(DISTINCT t.asset_id) AS n FROM tags t JOIN assets a ON a.id = t.asset_id "
            f"WHERE {where} GROUP BY t.tag ORDER BY n DESC, t.tag LIMIT ?",
            [*params, limit],
        )
        return [(str(r[0]), int(r[1])) for r in rows]

    # --- HTTP API: keys, jobs and listings (search.api) --------------------------------------

    def create_api_key(self, name: str, key_hash: str, scopes: str) -> int:
        """Record a new API key by its hash; returns its id."""
        cur = self.db.execute(
            "INSERT INTO api_keys (name, key_hash, scopes, created_at) VALUES (?, ?, ?, ?)",
            (name, key_hash, scopes, now_iso()),
        )
        return int(cur.lastrowid or 0)

    def api_key_by_hash(self, key_hash: str) -> dict[str, Any] | None:
        """The key row (revoked or not) with this hash, or None."""
        row = self.db.execute(
            "SELECT id, name, key_hash, scopes, created_at, revoked_at, last_used_at FROM api_keys "
            "WHERE key_hash = ?",
            (key_hash,),
        ).fetchone()
        return None if row is None else dict(row)

    def api_keys(self) -> list[dict[str, Any]]:
        """Every API key, oldest first, without its hash."""
        rows = self.db.execute(
            "SELECT id, name, scopes, created_at, revoked_at, last_used_at FROM api_keys ORDER BY id"
        )
        return [dict(r) for r in rows]

    def revoke_api_key(self, key_id: int) -> bool:
        """Revoke a key (a revoked key stays revoked); False when there is no key with that id."""
        self.db.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (now_iso(), key_id)
        )
        return self.db.execute("SELECT 1 FROM api_keys WHERE id = ?", (key_id,)).fetchone() is not None

    def touch_api_key(self, key_id: int) -> None:
        """Record that a key was just used."""
        self.db.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (now_iso(), key_id))

    def job(self, job_id: int) -> dict[str, Any] | None:
        """One job row with ``args`` and ``counts`` decoded, or None."""
        row = self.db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            return None
        return {**dict(row), "args": json.loads(row["args"]), "counts": json.loads(row["counts"])}

    def update_job(
        self,
        job_id: int,
        *,
        status: str | None = None,
        args: dict[str, Any] | None = None,
        counts: dict[str, Any] | None = None,
        finished: bool = False,
    ) -> None:
        """Change some fields of a job; ``finished`` stamps ``finished_at``."""
        values: dict[str, Any] = {}
        if status is not None:
            values["status"] = status
        if args is not None:
            values["args"] = json.dumps(args)
        if counts is not None:
            values["counts"] = json.dumps(counts)
        if finished:
            values["finished_at"] = now_iso()
        if values:
            assignments = ", ".join(f"{k} = ?" for k in values)
            self.db.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", [*values.values(), job_id])

    def jobs_after(self, kind: str, after_id: int, limit: int = 100) -> list[dict[str, Any]]:
        """Jobs of one kind with ids above ``after_id``, oldest first, ``args`` decoded."""
        rows = self.db.execute(
            "SELECT id, status, args FROM jobs WHERE kind = ? AND id > ? ORDER BY id LIMIT ?",
            (kind, after_id, limit),
        )
        return [{"id": int(r[0]), "status": r[1], "args": json.loads(r[2])} for r in rows]

    def jobs_with_status(self, kinds: Sequence[str], statuses: Sequence[str]) -> list[dict[str, Any]]:
        """Jobs of these kinds in these statuses, ``args`` decoded."""
        if not kinds or not statuses:
            return []
        rows = self.db.execute(
            f"SELECT id, kind, status, args FROM jobs WHERE kind IN ({','.join('?' * len(kinds))}) "
            f"AND status IN ({','.join('?' * len(statuses))}) ORDER BY id",
            [*kinds, *statuses],
        )
        return [{"id": int(r[0]), "kind": r[1], "status": r[2], "args": json.loads(r[3])} for r in rows]

    def job_counts(self) -> list[tuple[str, str, int]]:
        """``(kind, status, count)`` over every job."""
        rows = self.db.execute("SELECT kind, status, count(*) FROM jobs GROUP BY kind, status ORDER BY 1, 2")
        return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]

    def count_job_failures(self, job_id: int) -> int:
        return int(self.db.execute("SELECT count(*) FROM failures WHERE job_id = ?", (job_id,)).fetchone()[0])

    def keyframes_of(self, asset_id: int) -> list[tuple[int, float | None]]:
        """``(vector id, t)`` of an asset's vectors in time order (one, t None, for a still)."""
        rows = self.db.execute("SELECT id, t FROM vectors WHERE asset_id = ? ORDER BY t, id", (asset_id,))
        return [(int(r[0]), r[1]) for r in rows]

    def tag_counts_prefix(self, prefix: str, limit: int) -> list[tuple[str, int]]:
        """The most frequent tags starting with ``prefix`` (case-insensitive), with asset counts."""
        escaped = prefix.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self.db.execute(
            "SELECT tag, count(DISTINCT asset_id) AS n FROM tags WHERE lower(tag) LIKE ? ESCAPE '\\' "
            "GROUP BY tag ORDER BY n DESC, tag LIMIT ?",
            (escaped + "%", limit),
        )
        return [(r[0], int(r[1])) for r in rows]

    # --- filter column cache and vector index (search.columns, search.index) ---------------

    @property
    def assets_epoch(self) -> int:
        """Grows with every change to an asset or its tags; a filter cache built at another epoch is stale."""
        return int(self.get_state("assets_epoch") or 0)

    def assets_changed_since(self, epoch: int) -> np.ndarray:
        """Ids of the assets inserted, updated, deleted or retagged after ``epoch`` (sorted)."""
        rows = self.db.execute("SELECT asset_id FROM asset_changes WHERE epoch > ? ORDER BY 1", (epoch,))
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def asset_ids(self) -> np.ndarray:
        """Every asset id, sorted."""
        rows = self.db.execute("SELECT id FROM assets ORDER BY id")
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def _tuples(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        # Plain tuples: sqlite3.Row objects cost a third more on million-row reads.
        cursor = self.db.cursor()
        cursor.row_factory = None
        return cursor.execute(sql, params).fetchall()

    def _id_ranges(
        self, ids: Sequence[int] | None, batch: int, column: str = "a.id"
    ) -> Iterator[tuple[str, list[int]]]:
        # Whole-table reads go by ranges of ids (each query short, so no long-lived cursor);
        # reads of some assets go by chunks of ids.
        if ids is not None:
            for chunk in _chunks(sorted({int(i) for i in ids}), 500):
                yield f"{column} IN ({','.join('?' * len(chunk))})", chunk
            return
        low, high = self.db.execute("SELECT min(id), max(id) FROM assets").fetchone()
        if low is None:
            return
        for start in range(int(low), int(high) + 1, batch):
            yield f"{column} >= ? AND {column} < ?", [start, start + batch]

    def asset_values(
        self, expression: str, ids: Sequence[int] | None = None, batch: int = 100_000
    ) -> Iterator[tuple[list[int], list[Any]]]:
        """``(asset ids, values)`` of an SQL expression over ``assets a`` (built by our code: the
        built-in fields of ``search.filters``), for every asset or for ``ids``, by batches."""
        for where, params in self._id_ranges(ids, batch):
            sql = f"SELECT a.id, {expression} FROM assets a WHERE {where}"
            rows = self._tuples(sql, params)
            if rows:
                found, values = zip(*rows, strict=True)
                yield list(found), list(values)

    def meta_elements(
        self, path: str, ids: Sequence[int] | None = None, batch: int = 100_000
    ) -> Iterator[tuple[list[int], list[str], list[Any]]]:
        """``(asset ids, JSON types, values)`` of what ``json_each`` yields for the value at ``path``
        of user meta, else of embedded metadata: the value itself, or each item of a list, or each
        member of an object. The elements a meta filter compares (``search.filters``)."""
        source = "json_each(coalesce(a.meta -> ?, a.embedded -> ?)) j"
        for where, params in self._id_ranges(ids, batch):
            sql = f"SELECT a.id, j.type, j.value FROM assets a, {source} WHERE {where}"
            rows = self._tuples(sql, [path, path, *params])
            if rows:
                found, types, values = zip(*rows, strict=True)
                yield list(found), list(types), list(values)

    def tag_rows(
        self, ids: Sequence[int] | None = None, batch: int = 100_000
    ) -> Iterator[tuple[list[int], list[str], list[float]]]:
        """``(asset ids, tags lowercased by SQLite, scores)`` of every tag (or of the assets ``ids``)."""
        for where, params in self._id_ranges(ids, batch, column="asset_id"):
            rows = self._tuples(f"SELECT asset_id, lower(tag), score FROM tags WHERE {where}", params)
            if rows:
                found, tags, scores = zip(*rows, strict=True)
                yield list(found), list(tags), list(scores)

    def matching_asset_ids(
        self, where: str, params: Sequence[Any], ids: Sequence[int] | None = None
    ) -> np.ndarray:
        """Sorted ids of the assets passing a compiled filter (among ``ids`` when given)."""
        if ids is None:
            rows = self.db.execute(f"SELECT a.id FROM assets a WHERE ({where}) ORDER BY 1", list(params))
            return np.fromiter((r[0] for r in rows), dtype=np.int64)
        found: list[int] = []
        for chunk in _chunks(sorted({int(i) for i in ids}), 500):
            marks = ",".join("?" * len(chunk))
            found.extend(
                r[0]
                for r in self.db.execute(
                    f"SELECT a.id FROM assets a WHERE a.id IN ({marks}) AND ({where})", [*chunk, *params]
                )
            )
        return np.array(sorted(found), dtype=np.int64)

    def map_texts(self, expression: str, texts: Sequence[str]) -> list[Any]:
        """``expression`` (SQL over ``j.value``, built by our code) evaluated by SQLite for each text."""
        out: list[Any] = []
        for start in range(0, len(texts), 50_000):
            chunk = list(texts[start : start + 50_000])
            rows = self.db.execute(
                f"SELECT {expression} FROM json_each(?) j ORDER BY j.key", (json.dumps(chunk),)
            ).fetchall()
            out.extend(r[0] for r in rows)
        return out

    def vector_ids(self, upto_id: int) -> np.ndarray:
        """Ids of the stored vectors up to ``upto_id`` (sorted): which rows of an index still live."""
        rows = self.db.execute("SELECT id FROM vectors WHERE id <= ? ORDER BY id", (upto_id,))
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def iter_vector_rows(
        self, after_id: int = 0, batch: int = 16384, upto_id: int | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Stream ``(vector ids, asset ids, vectors)`` in id order, for building an index."""
        last = after_id
        limit = upto_id if upto_id is not None else self.max_vector_id()
        while True:
            rows = self.db.execute(
                "SELECT id, asset_id, vector FROM vectors WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
                (last, limit, batch),
            ).fetchall()
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            owners = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
            vectors = np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32).reshape(len(rows), -1)
            yield ids, owners, vectors
            last = int(ids[-1])


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


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
