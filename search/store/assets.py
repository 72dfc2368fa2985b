"""Assets and tags of the store: reading assets by id, uri or content hash, inserting, updating and
deleting them, counting them, and replacing, reading and counting the tags of each source (``clip``,
``user``, ``import``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from assetlens.search.errors import AssetNotFoundError
from assetlens.search.store.base import StoreBase, _chunks
from assetlens.search.store.records import ASSET_COLUMNS, Asset, Tag, now_iso


class AssetsMixin(StoreBase):
    """Rows of ``assets`` and ``tags``."""

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

    def max_asset_id(self) -> int:
        return int(self.db.execute("SELECT coalesce(max(id), 0) FROM assets").fetchone()[0])

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

    def tag_counts_prefix(self, prefix: str, limit: int) -> list[tuple[str, int]]:
        """The most frequent tags starting with ``prefix`` (case-insensitive), with asset counts."""
        escaped = prefix.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self.db.execute(
            "SELECT tag, count(DISTINCT asset_id) AS n FROM tags WHERE lower(tag) LIKE ? ESCAPE '\\' "
            "GROUP BY tag ORDER BY n DESC, tag LIMIT ?",
            (escaped + "%", limit),
        )
        return [(r[0], int(r[1])) for r in rows]
