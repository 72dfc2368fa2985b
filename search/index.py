"""The FAISS index: a cache of the store's vectors, kept in step with SQLite.

The index file sits in the data dir with a JSON sidecar recording the model id, dimension,
the last vector id it holds and the store's vector epoch (bumped by every vector delete).
On open, an index whose model or epoch differs from the store is rebuilt; otherwise the vectors
added since its last id are appended. Saving is atomic (write then rename), so a reader never
sees half a file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from search.store import Store

INDEX_FILE = "index.faiss"
SIDECAR_FILE = "index.json"


@dataclass(frozen=True)
class IndexState:
    """What an index file holds."""

    model: str | None
    dim: int
    last_id: int
    epoch: int
    count: int


class VectorIndex:
    """Exact inner-product search over every vector of a store.

    Args:
        store: The library's store (the truth).
        data_dir: Where the index file lives.
    """

    def __init__(self, store: Store, data_dir: Path) -> None:
        self.store = store
        self.path = Path(data_dir) / INDEX_FILE
        self.sidecar = Path(data_dir) / SIDECAR_FILE
        self._index: faiss.Index | None = None
        self.state = IndexState(None, 0, 0, -1, 0)
        self.rebuilt = False

    def sync(self, save: bool = True) -> VectorIndex:
        """Load the saved index and bring it level with the store (rebuild if stale).

        Args:
            save: Write the index back when it changed (readers may pass False).
        """
        model, epoch = self.store.model_id, self.store.vector_epoch
        if self._index is None:
            self._load()
        # An empty index is rebuilt too: it may have been made before any vector fixed the dimension.
        if self._index is None or self.size == 0 or self.state.model != model or self.state.epoch != epoch:
            self._rebuild(model, epoch)
            changed = True
        else:
            changed = self._catch_up()
        if changed and save:
            self.save()
        return self

    def _load(self) -> None:
        if not (self.path.exists() and self.sidecar.exists()):
            return
        try:
            state = IndexState(**json.loads(self.sidecar.read_text()))
            index = faiss.read_index(str(self.path))
        except (OSError, ValueError, TypeError, RuntimeError):
            return  # unreadable cache: the caller rebuilds it from the store
        if index.ntotal != state.count:
            return
        self._index, self.state = index, state

    def _rebuild(self, model: str | None, epoch: int) -> None:
        dim = self._store_dim()
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self.state = IndexState(model, dim, 0, epoch, 0)
        self.rebuilt = True
        self._catch_up()

    def _catch_up(self) -> bool:
        assert self._index is not None
        last, added = self.state.last_id, 0
        for ids, vectors in self.store.iter_vectors(after_id=last):
            self._index.add_with_ids(vectors, ids)
            last, added = int(ids[-1]), added + len(ids)
        if added:
            self.state = IndexState(
                self.state.model, self.state.dim, last, self.state.epoch, int(self._index.ntotal)
            )
        return added > 0

    def _store_dim(self) -> int:
        for _, vectors in self.store.iter_vectors(batch=1):
            return int(vectors.shape[1])
        return 1  # empty store: any dimension works until vectors arrive (then the epoch/model changes)

    def save(self) -> None:
        """Write the index and its sidecar atomically."""
        assert self._index is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        faiss.write_index(self._index, str(tmp))
        os.replace(tmp, self.path)
        tmp_sidecar = self.sidecar.with_name(f".{self.sidecar.name}.{os.getpid()}.tmp")
        tmp_sidecar.write_text(json.dumps(self.state.__dict__))
        os.replace(tmp_sidecar, self.sidecar)

    @property
    def size(self) -> int:
        """Vectors in the index."""
        return 0 if self._index is None else int(self._index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k vectors by inner product.

        Args:
            queries: ``(Q, dim)`` float32 unit vectors.
            k: Neighbours per query.

        Returns:
            ``(scores, vector_ids)``, each ``(Q, k')`` with ``k' = min(k, size)``.
        """
        if self._index is None or self.size == 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        k = min(k, self.size)
        scores, ids = self._index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        return scores, ids

    def status(self) -> dict[str, object]:
        """Index state and whether it is level with the store."""
        return {
            "file": str(self.path),
            "model": self.state.model,
            "dim": self.state.dim,
            "vectors": self.size,
            "last_vector_id": self.state.last_id,
            "in_step": self.state.last_id == self.store.max_vector_id()
            and self.state.epoch == self.store.vector_epoch,
        }
