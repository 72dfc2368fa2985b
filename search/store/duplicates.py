"""Near-duplicates in the store: perceptual hashes per frame, the pairs found close, and the groups.

:class:`DuplicateStore` (``Store.duplicates``) is the one room that writes ``frame_hashes``,
``near_duplicate_pairs`` and ``near_duplicates``; :mod:`search.duplicates` decides what goes in.
A frame's hashes are ``(rows, 2)`` uint64 (see :mod:`enrich.phash`), stored little-endian.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from assetlens.search.store.base import _chunks

HASH_DTYPE = np.dtype("<u8")
CHECKED_KEY = "near_duplicates_checked"  # state: the last frame_hashes id compared with the library


def encode_hashes(hashes: np.ndarray) -> bytes:
    """The stored bytes of one frame's hashes."""
    return np.ascontiguousarray(hashes, dtype=HASH_DTYPE).tobytes()


def decode_hashes(blob: bytes) -> np.ndarray:
    """One frame's hashes as ``(rows, 2)`` uint64."""
    return np.frombuffer(blob, dtype=HASH_DTYPE).reshape(-1, 2).astype(np.uint64)


@dataclass(frozen=True)
class Pairs:
    """Pairs of assets found close, as parallel arrays (``a < b``)."""

    a: np.ndarray
    b: np.ndarray
    similarity: np.ndarray
    distance: np.ndarray

    def __len__(self) -> int:
        return len(self.a)


class DuplicateStore:
    """Reads and writes hashes, pairs and groups; the caller groups writes in ``Store.transaction``.

    Args:
        db: The library's connection (shared with the rest of the store).
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    # --- hashes ----------------------------------------------------------------------------

    def replace_hashes(self, asset_id: int, hashes: np.ndarray, times: Sequence[float | None]) -> None:
        """Replace an asset's frame hashes (``(K, rows, 2)``); its pairs go (its content changed)."""
        self.forget(asset_id)
        self.db.executemany(
            "INSERT INTO frame_hashes (asset_id, t, hashes) VALUES (?, ?, ?)",
            [(asset_id, t, encode_hashes(h)) for h, t in zip(hashes, times, strict=True)],
        )

    def forget(self, asset_id: int) -> None:
        """Drop an asset's hashes and pairs (its groups follow at the next regrouping)."""
        self.db.execute("DELETE FROM frame_hashes WHERE asset_id = ?", (asset_id,))
        self.db.execute("DELETE FROM near_duplicate_pairs WHERE a = ? OR b = ?", (asset_id, asset_id))

    def copy_hashes(self, source: int, target: int) -> None:
        """Give ``target`` (same content: an exact duplicate) the frame hashes of ``source``."""
        self.forget(target)
        self.db.execute(
            "INSERT INTO frame_hashes (asset_id, t, hashes) SELECT ?, t, hashes FROM frame_hashes "
            "WHERE asset_id = ? ORDER BY id",
            (target, source),
        )

    def hashes_by_asset(self, asset_ids: Sequence[int]) -> dict[int, np.ndarray]:
        """``(K, rows, 2)`` hashes of several assets (assets without hashes are absent)."""
        grouped: dict[int, list[np.ndarray]] = {}
        for chunk in _chunks(sorted({int(i) for i in asset_ids}), 500):
            marks = ",".join("?" * len(chunk))
            for aid, blob in self.db.execute(
                f"SELECT asset_id, hashes FROM frame_hashes WHERE asset_id IN ({marks}) ORDER BY id", chunk
            ):
                grouped.setdefault(int(aid), []).append(decode_hashes(blob))
        return {aid: np.stack(frames) for aid, frames in grouped.items()}

    def iter_hashes(self, batch: int = 50_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Stream ``(asset ids, hashes (n, rows, 2))`` of every frame, in id order."""
        last = 0
        while True:
            rows = self.db.execute(
                "SELECT id, asset_id, hashes FROM frame_hashes WHERE id > ? ORDER BY id LIMIT ?",
                (last, batch),
            ).fetchall()
            if not rows:
                return
            last = int(rows[-1][0])
            owners = np.fromiter((r[1] for r in rows), np.int64, len(rows))
            yield owners, np.stack([decode_hashes(r[2]) for r in rows])

    def hashed_assets(self) -> list[int]:
        """Ids of every asset with hashes."""
        return [int(r[0]) for r in self.db.execute("SELECT DISTINCT asset_id FROM frame_hashes ORDER BY 1")]

    def unhashed(self) -> list[int]:
        """Ids of the ingested images and videos with vectors but without hashes (made before them)."""
        rows = self.db.execute(
            "SELECT a.id FROM assets a WHERE a.kind IN ('image', 'video') AND a.status = 'ok' "
            "AND EXISTS (SELECT 1 FROM vectors v WHERE v.asset_id = a.id) "
            "AND NOT EXISTS (SELECT 1 FROM frame_hashes h WHERE h.asset_id = a.id) ORDER BY a.id"
        )
        return [int(r[0]) for r in rows]

    def unchecked(self) -> tuple[list[int], int]:
        """Assets whose hashes were written since the last comparison, and the newest frame id."""
        after = int(self.db.execute("SELECT coalesce(max(value), 0) FROM state WHERE key = ?",
                                    (CHECKED_KEY,)).fetchone()[0])  # fmt: skip
        top = int(self.db.execute("SELECT coalesce(max(id), 0) FROM frame_hashes").fetchone()[0])
        rows = self.db.execute("SELECT DISTINCT asset_id FROM frame_hashes WHERE id > ? ORDER BY 1", (after,))
        return [int(r[0]) for r in rows], top

    def mark_checked(self, upto: int) -> None:
        """Record that every frame up to ``upto`` was compared with the library."""
        self.db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (CHECKED_KEY, str(int(upto))))

    def counts(self) -> dict[str, int]:
        """``{"frames", "assets", "pairs", "grouped", "groups"}``."""
        frames, assets = self.db.execute(
            "SELECT count(*), count(DISTINCT asset_id) FROM frame_hashes"
        ).fetchone()
        pairs = self.db.execute("SELECT count(*) FROM near_duplicate_pairs").fetchone()[0]
        grouped, groups = self.db.execute(
            "SELECT count(*), count(DISTINCT group_id) FROM near_duplicates"
        ).fetchone()
        return {"frames": int(frames), "assets": int(assets), "pairs": int(pairs), "grouped": int(grouped),
                "groups": int(groups)}  # fmt: skip

    # --- pairs -----------------------------------------------------------------------------

    def replace_pairs_of(self, asset_ids: Sequence[int], pairs: Pairs) -> None:
        """Drop the pairs touching ``asset_ids`` and store ``pairs`` (found by comparing them again)."""
        for chunk in _chunks(sorted({int(i) for i in asset_ids}), 400):
            marks = ",".join("?" * len(chunk))
            self.db.execute(
                f"DELETE FROM near_duplicate_pairs WHERE a IN ({marks}) OR b IN ({marks})", [*chunk, *chunk]
            )
        self.add_pairs(pairs)

    def add_pairs(self, pairs: Pairs) -> None:
        """Store pairs (``a < b``); a pair already there takes the new figures."""
        self.db.executemany(
            "INSERT INTO near_duplicate_pairs VALUES (?, ?, ?, ?) ON CONFLICT(a, b) DO UPDATE SET "
            "similarity = excluded.similarity, distance = excluded.distance",
            zip(pairs.a.tolist(), pairs.b.tolist(), pairs.similarity.tolist(), pairs.distance.tolist(),
                strict=True),
        )  # fmt: skip

    def pairs(self, min_similarity: float, max_distance: int) -> Pairs:
        """Every stored pair at least this similar and at most this far apart."""
        rows = self.db.execute(
            "SELECT a, b, similarity, distance FROM near_duplicate_pairs "
            "WHERE similarity >= ? AND distance <= ?",
            (min_similarity, max_distance),
        ).fetchall()
        columns = list(zip(*rows, strict=True)) if rows else [(), (), (), ()]
        return Pairs(
            np.array(columns[0], np.int64), np.array(columns[1], np.int64),
            np.array(columns[2], np.float64), np.array(columns[3], np.int64),
        )  # fmt: skip

    def clear_pairs(self) -> None:
        """Forget every pair and comparison (before comparing the whole library again)."""
        self.db.execute("DELETE FROM near_duplicate_pairs")
        self.db.execute("DELETE FROM state WHERE key = ?", (CHECKED_KEY,))

    # --- groups ----------------------------------------------------------------------------

    def groups(self) -> dict[int, int]:
        """Asset id -> group id (its representative) of every grouped asset."""
        return {int(a): int(g) for a, g in self.db.execute("SELECT asset_id, group_id FROM near_duplicates")}

    def set_groups(self, wanted: Mapping[int, int]) -> int:
        """Make the groups ``wanted`` (asset -> group id), writing only the differences; returns how many."""
        current = self.groups()
        gone = [a for a in current if a not in wanted]
        moved = [(g, a) for a, g in wanted.items() if a in current and current[a] != g]
        added = [(a, g) for a, g in wanted.items() if a not in current]
        # Moves and additions first: a removal then never finds a group of one that is about to grow.
        self.db.executemany("UPDATE near_duplicates SET group_id = ? WHERE asset_id = ?", moved)
        self.db.executemany("INSERT INTO near_duplicates VALUES (?, ?)", added)
        self.db.executemany("DELETE FROM near_duplicates WHERE asset_id = ?", [(a,) for a in gone])
        return len(gone) + len(moved) + len(added)

    def group_of(self, asset_ids: Sequence[int]) -> dict[int, int]:
        """Group ids of the grouped assets among ``asset_ids``."""
        out: dict[int, int] = {}
        for chunk in _chunks(sorted({int(i) for i in asset_ids}), 500):
            marks = ",".join("?" * len(chunk))
            for a, g in self.db.execute(
                f"SELECT asset_id, group_id FROM near_duplicates WHERE asset_id IN ({marks})", chunk
            ):
                out[int(a)] = int(g)
        return out
