"""Vectors of the store: the embedding model a library holds (:meth:`VectorsMixin.ensure_model`), writing
and copying an asset's vectors (FAISS ids are vector ids), reading them by asset, by id or at random,
and streaming them in id order for building and catching up the vector index (``search.vectors.index``).

Vectors are stored as little-endian float16 (:data:`VECTOR_DTYPE`): half the bytes of float32, and
for unit vectors a cosine to the float32 original of at least 0.99999 (measured on CLIP-like
512-d vectors; ``tests/search/vectors/test_float16_store.py``), far below any ranking difference.
Every read hands back float32 (:func:`decode_vectors`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence

import numpy as np

from assetlens.search.errors import AssetNotFoundError, ModelMismatchError
from assetlens.search.store.base import StoreBase, _chunks

VECTOR_DTYPE = np.dtype("<f2")


def encode_vector(vector: np.ndarray) -> bytes:
    """The stored bytes of one vector (float16)."""
    return np.asarray(vector, dtype=VECTOR_DTYPE).tobytes()


def decode_vectors(blob: bytes, count: int = 1) -> np.ndarray:
    """Stored bytes of ``count`` vectors (concatenated) as a ``(count, dim)`` float32 array."""
    return np.frombuffer(blob, dtype=VECTOR_DTYPE).reshape(count, -1).astype(np.float32)


class VectorsMixin(StoreBase):
    """Vector rows and the model they belong to."""

    # --- model -----------------------------------------------------------------------------

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
                (asset_id, t, model_id, encode_vector(vector)),
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

    def vector_dim(self) -> int:
        """The dimension of the stored vectors (0 while there are none)."""
        row = self.db.execute("SELECT length(vector) FROM vectors LIMIT 1").fetchone()
        return 0 if row is None else int(row[0]) // VECTOR_DTYPE.itemsize

    def max_vector_id(self) -> int:
        return int(self.db.execute("SELECT coalesce(max(id), 0) FROM vectors").fetchone()[0])

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
                vectors.append(decode_vectors(blob)[0])
                times.append(t)
        return {aid: (np.stack(v), t) for aid, (v, t) in grouped.items()}

    def reset_model(self, model_id: str) -> None:
        """Drop every vector and model tag and adopt ``model_id`` (the start of a re-embed)."""
        self.db.execute("DELETE FROM vectors")
        self.db.execute("DELETE FROM tags WHERE source = 'clip'")
        self.set_state("model", model_id)

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
        vectors = [decode_vectors(r[0])[0] for r in rows[:size]]
        return np.stack(vectors) if vectors else np.zeros((0, 0), np.float32)

    def keyframes_of(self, asset_id: int) -> list[tuple[int, float | None]]:
        """``(vector id, t)`` of an asset's vectors in time order (one, t None, for a still)."""
        rows = self.db.execute("SELECT id, t FROM vectors WHERE asset_id = ? ORDER BY t, id", (asset_id,))
        return [(int(r[0]), r[1]) for r in rows]

    # --- vector index (search.vectors.index) -------------------------------------------------------

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
            vectors = decode_vectors(b"".join(r[2] for r in rows), len(rows))
            yield ids, owners, vectors
            last = int(ids[-1])
