"""The FAISS index: a cache of the store's vectors, kept in step with SQLite.

Small libraries get an exact flat index. Large ones get IVF-PQ (``ivfpq``): 64-byte codes in
memory and the float16 vectors in a memory-mapped re-rank file beside it
(:mod:`search.vectors.rerank`), so a shortlist is re-ranked exactly and 10M+ vectors fit in a few
GB; HNSW and IVF over float32 remain as chosen kinds (:class:`IndexConfig`). Every kind can score
any subset of rows exactly (the planner's exact path, ``search.vectors.planner``).

Rows are numbered in vector-id order; three arrays map them: vector id, asset id and alive.
Keeping in step with the store:

* new vectors (ids above the last one held) are appended: to the flat index directly, to an ANN
  index through a small exact "delta" that is folded in on save (or when it grows large), so a
  reader never waits for a graph insert;
* deleted vectors (the store's vector epoch moved) become tombstones, left out of every search
  by an ``IDSelector``, until they pass ``max_deleted_fraction``: then a writer rebuilds;
* another model, another dimension or an unreadable file: rebuild.

Rebuilds (:mod:`search.vectors.build`) run beside searches: the new index is built outside the
lock searches take and swapped in whole, in one step under it. A process that finds newer files
on disk (another process rebuilt or saved) loads them the same way.

Files: see :mod:`search.vectors.files`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import faiss as _faiss
import numpy as np

from assetlens.search.store import Store
from assetlens.search.vectors.ann import IndexConfig, estimate_bytes, knn_rows, merge_top
from assetlens.search.vectors.build import BuildProgress, Snapshot, build_snapshot
from assetlens.search.vectors.files import (
    INDEX_FILE,
    IndexState,
    read_index_files,
    sidecar_stat,
    write_index_files,
)
from assetlens.search.vectors.rerank import RerankFile

__all__ = ["BuildProgress", "IndexConfig", "IndexState", "VectorIndex", "knn_rows", "merge_top"]

# The SWIG module's stubs miss keyword constructors and free functions used here.
faiss: Any = _faiss


class VectorIndex:
    """Inner-product search over the vectors of a store: exact when small, IVF-PQ (or HNSW/IVF) when large.

    Args:
        store: The library's store (the truth).
        data_dir: Where the index files live.
        config: Kind and parameters (default: :class:`IndexConfig` defaults).
    """

    def __init__(self, store: Store, data_dir: Path, config: IndexConfig | None = None) -> None:
        self.store = store
        self.config = config or IndexConfig()
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / INDEX_FILE
        self.lock = threading.RLock()  # searches read the FAISS index; adds and swaps change it
        self._syncing = threading.Lock()  # one sync (maybe a long rebuild) at a time
        self._main: Any = None
        self._rerank: RerankFile | None = None
        self._delta = np.zeros((0, 0), np.float32)
        self.ids = np.zeros(0, np.int64)  # vector id of each row
        self.assets = np.zeros(0, np.int64)  # asset id of each row
        self.alive = np.zeros(0, bool)
        self.state = IndexState(None, 0, 0, -1, 0)
        self.rebuilt = False
        self.version = 0  # bumped whenever rows change, so callers can cache row-derived arrays
        self.build_seconds: float | None = None
        self.progress: BuildProgress | None = None  # of the build running now
        self._seen: tuple[int, int, int] | None = None  # stat of the sidecar last loaded or written

    # --- keeping in step -------------------------------------------------------------------

    def sync(self, save: bool = True, progress: Callable[[BuildProgress], None] | None = None) -> VectorIndex:
        """Load the saved index and bring it level with the store.

        A reader that finds another thread syncing (maybe rebuilding for minutes) goes on with the
        index it has; rebuilds happen outside :attr:`lock`, so searches go on meanwhile.

        Args:
            save: Write the index back when it changed, folding new vectors into an ANN index and
                rebuilding past too many deletes (writers); readers pass False and keep new
                vectors in the exact delta and deleted ones as tombstones.
            progress: Called as a rebuild, if one is needed, adds vectors.
        """
        if not self._syncing.acquire(blocking=save or self._main is None):
            return self
        try:
            self._load_newer()
            with self.lock:
                model = self.store.model_id
                stale = self._main is None or self.size == 0 or self.state.model != model
            if stale:
                self._rebuild(progress)
                changed = True
            else:
                with self.lock:
                    changed = self._reconcile(self.store.vector_epoch)
                    changed = self._catch_up() or changed
                    rebuild = (self._too_many_deleted() and (save or self.state.kind == "flat")) or (
                        save and self._wrong_kind()
                    )
                if rebuild:
                    self._rebuild(progress)
                    changed = True
            if changed and save:
                self.save()
            return self
        finally:
            self._syncing.release()

    def build(
        self, kind: str | None = None, progress: Callable[[BuildProgress], None] | None = None
    ) -> VectorIndex:
        """Rebuild from every vector of the store and save (``assetlens index build``).

        Searches go on against the current index while it builds; the new one replaces it in one
        step at the end.

        Args:
            kind: Override the configured kind (``flat``, ``hnsw``, ``ivf``, ``ivfpq`` or ``auto``).
            progress: Called after every batch of vectors added (with the time left).
        """
        with self._syncing:
            if kind is not None and kind != self.config.kind:
                self.config = IndexConfig(**{**asdict(self.config), "kind": kind})
            self._rebuild(progress)
            self.save()
            return self

    def _wrong_kind(self) -> bool:
        # A flat index that grew past flat_max, or a kind the configuration no longer names.
        wanted = self.config.kind_for(self.size)
        if wanted in ("ivf", "ivfpq") and self.state.kind == "flat" and self.size < 39 * 256:
            return False  # still too few vectors to train IVF lists and PQ codes (see new_index)
        if self.config.kind == "auto":
            return self.state.kind == "flat" and wanted != "flat"
        return wanted != self.state.kind

    def _too_many_deleted(self) -> bool:
        rows = len(self.ids)
        return rows > 0 and (rows - self.size) / rows > self.config.max_deleted_fraction

    def _rebuild(self, progress: Callable[[BuildProgress], None] | None = None) -> None:
        """Build a new index outside the lock, swap it in, then catch up what changed meanwhile."""
        started = time.perf_counter()
        with self.lock:
            model, epoch = self.store.model_id, self.store.vector_epoch

        def report(p: BuildProgress) -> None:
            self.progress = p
            if progress is not None:
                progress(p)

        try:
            snapshot = build_snapshot(self.store.path, self.data_dir, self.config, report)
        finally:
            self.progress = None
        with self.lock:
            self._install(snapshot, model, epoch)
            self._reconcile(self.store.vector_epoch)
            # An empty snapshot has no dimension yet: vectors written since (a first ingest under
            # way) wait for the next sync, which finds the index empty and builds it again.
            if len(snapshot.ids):
                self._catch_up()
        self.build_seconds = time.perf_counter() - started

    def _install(
        self,
        snap: Snapshot,
        model: str | None,
        epoch: int,
        state: IndexState | None = None,
        alive: np.ndarray | None = None,
    ) -> None:
        """Swap in a built (or, with its ``state`` and ``alive``, a loaded) index; call under :attr:`lock`."""
        self._main, self._rerank = snap.main, snap.rerank
        self.ids, self.assets = snap.ids, snap.assets
        self.alive = np.ones(len(snap.ids), bool) if alive is None else alive
        self._delta = np.zeros((0, snap.dim), np.float32)
        rerank = "" if snap.rerank is None else snap.rerank.path.name
        self.state = state or IndexState(
            model, snap.dim, snap.last_id, epoch, len(snap.ids), snap.kind, snap.params, rerank=rerank
        )
        self._set_search_params()
        self.rebuilt = state is None
        self.version += 1

    def _load_newer(self) -> None:
        """Load the files on disk when another process wrote them since this one last looked."""
        seen = sidecar_stat(self.data_dir)
        if seen is None or seen == self._seen:
            return
        for attempt in range(2):
            loaded = read_index_files(self.data_dir)
            if loaded is not None:
                snap, state, alive = loaded
                with self.lock:
                    if state.generation != self.state.generation:
                        self._install(snap, state.model, state.epoch, state, alive)
                self._seen = seen
                return
            if attempt == 0:
                time.sleep(0.2)  # maybe a writer is between its renames: look once more
        self._seen = seen  # unreadable: the caller rebuilds from the store (and saves, if a writer)

    def _set_search_params(self) -> None:
        if self.state.kind == "hnsw":
            faiss.downcast_index(self._main).hnsw.efSearch = self.config.hnsw_ef_search
        elif self.state.kind in ("ivf", "ivfpq"):
            faiss.extract_index_ivf(self._main).nprobe = self.config.ivf_nprobe

    def _reconcile(self, epoch: int) -> bool:
        """Mark rows whose vectors the store no longer holds as tombstones."""
        if epoch == self.state.epoch:
            return False
        live = self.store.vector_ids(self.state.last_id)
        pos = np.minimum(np.searchsorted(live, self.ids), max(len(live) - 1, 0))
        still = live[pos] == self.ids if len(live) else np.zeros(len(self.ids), bool)
        self.alive = self.alive & still  # a new array: callers may hold the old one
        self.state = IndexState(**{**asdict(self.state), "epoch": epoch, "deleted": int((~self.alive).sum())})
        self.version += 1
        return True

    def _catch_up(self) -> bool:
        added = 0
        for vid, owner, vectors in self.store.iter_vector_rows(after_id=self.state.last_id):
            if self.state.kind == "flat":
                self._main.add(np.ascontiguousarray(vectors))
            else:
                self._delta = np.concatenate([self._delta.reshape(-1, self.state.dim), vectors])
            self.ids = np.concatenate([self.ids, vid])
            self.assets = np.concatenate([self.assets, owner])
            self.alive = np.concatenate([self.alive, np.ones(len(vid), bool)])
            self.state = IndexState(**{**asdict(self.state), "last_id": int(vid[-1])})
            added += len(vid)
            if len(self._delta) > self.config.max_delta:
                self._fold()
        if added:
            self.state = IndexState(**{**asdict(self.state), "count": int(self._main.ntotal)})
            self.version += 1
        return added > 0

    def _fold(self) -> None:
        """Add the delta's vectors to the ANN index (they keep their row numbers)."""
        if len(self._delta):
            self._main.add(np.ascontiguousarray(self._delta))
            if self._rerank is not None:
                self._rerank.append(self._delta)
            self._delta = np.zeros((0, self.state.dim), np.float32)
            self.state = IndexState(**{**asdict(self.state), "count": int(self._main.ntotal)})

    def save(self) -> None:
        """Write the index, its rows and its sidecar atomically (new vectors folded in first)."""
        with self.lock:
            assert self._main is not None
            self._fold()
            self.state = write_index_files(
                self.data_dir, self._main, self.state, self.ids, self.assets, self.alive
            )
            self._seen = sidecar_stat(self.data_dir)

    # --- reading ---------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Live vectors (tombstones not counted)."""
        return int(self.alive.sum()) if self._main is not None else 0

    @property
    def kind(self) -> str:
        """The kind of the index held: flat, hnsw, ivf or ivfpq."""
        return self.state.kind

    @property
    def main_rows(self) -> int:
        """Rows held by the FAISS index; rows beyond are the exact delta."""
        return 0 if self._main is None else int(self._main.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k live vectors by inner product (approximate for HNSW/IVF/IVF-PQ).

        Args:
            queries: ``(Q, dim)`` float32 unit vectors.
            k: Neighbours per query.

        Returns:
            ``(scores, vector_ids)``, each ``(Q, k')`` with ``k' = min(k, size)``.
        """
        with self.lock:
            k = min(k, self.size)
            out_s = np.zeros((len(queries), k), np.float32)
            out_i = np.zeros((len(queries), k), np.int64)
            for qi, query in enumerate(np.asarray(queries, dtype=np.float32)):
                scores, rows = self.search_rows(query, k, None)
                out_s[qi], out_i[qi] = scores[:k], self.ids[rows[:k]]
            return out_s, out_i

    def search_rows(
        self, query: np.ndarray, k: int, allowed: np.ndarray | None, effort: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows among live rows (and ``allowed`` rows when given), best first.

        Args:
            query: ``(dim,)`` float32 unit vector.
            k: Rows wanted.
            allowed: Bool mask over all rows, or None for every live row.
            effort: HNSW efSearch or IVF/IVF-PQ nprobe (None: the configured default).

        Returns:
            ``(scores, rows)``; fewer than ``k`` when the index (or the ANN search) ran short.
        """
        with self.lock:
            n_main = self.main_rows
            mask = self.alive if allowed is None else (allowed & self.alive)
            query = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
            results = []
            if n_main:
                results.append(self._search_main(query, k, mask[:n_main], allowed is None, effort))
            if len(self._delta):
                rows = np.flatnonzero(mask[n_main:]).astype(np.int64)
                scores, found = knn_rows(query[0], self._delta, rows, k)
                results.append((scores, found + n_main))
            return merge_top(results, k)

    def _search_main(
        self, query: np.ndarray, k: int, mask: np.ndarray, unfiltered: bool, effort: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        sel = None
        if not (unfiltered and self.state.deleted == 0):
            sel = faiss.IDSelectorBitmap(np.packbits(mask, bitorder="little"))
        kk = min(k, len(mask))
        if self.state.kind == "hnsw":
            ef = max(effort or self.config.hnsw_ef_search, kk)
            params: Any = faiss.SearchParametersHNSW(efSearch=ef, sel=sel)
        elif self.state.kind == "ivfpq":
            # The codes pick a shortlist; the float16 vectors of the re-rank file order it exactly.
            params = faiss.SearchParametersIVF(nprobe=effort or self.config.ivf_nprobe, sel=sel)
            _, rows = self._main.search(query, min(self.config.shortlist(k), len(mask)), params=params)
            assert self._rerank is not None
            return self._rerank.top(query[0], np.sort(rows[0][rows[0] >= 0]), kk)
        elif self.state.kind == "ivf":
            params = faiss.SearchParametersIVF(nprobe=effort or self.config.ivf_nprobe, sel=sel)
        else:
            params = faiss.SearchParameters(sel=sel)
        scores, rows = self._main.search(query, kk, params=params)
        keep = rows[0] >= 0
        return scores[0][keep], rows[0][keep]

    def scan_rows(self, query: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k among the given rows (sorted ascending, all live), best first."""
        with self.lock:
            n_main = self.main_rows
            rows = np.asarray(rows, dtype=np.int64)
            split = int(np.searchsorted(rows, n_main))
            query = np.ascontiguousarray(query, dtype=np.float32)
            results = []
            if split:
                results.append(self._scan_main(query, rows[:split], k))
            if split < len(rows):
                scores, found = knn_rows(query, self._delta, rows[split:] - n_main, k)
                results.append((scores, found + n_main))
            return merge_top(results, k)

    def _scan_main(self, query: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self._rerank is not None:
            return self._rerank.top(query, rows, k)
        if self.state.kind == "ivf":
            # IVF has no row-addressable matrix: probe every list, scoring only the selected rows.
            mask = np.zeros(self.main_rows, bool)
            mask[rows] = True
            ivf = faiss.extract_index_ivf(self._main)
            return self._search_main(query.reshape(1, -1), k, mask, False, int(ivf.nlist))
        storage = self._main if self.state.kind == "flat" else faiss.downcast_index(self._main.storage)
        return knn_rows(query, storage, rows, k)

    def status(self) -> dict[str, object]:
        """Index state and whether it is level with the store."""
        with self.lock:
            return {
                "file": str(self.path),
                "kind": self.state.kind,
                "params": dict(self.state.params),
                "model": self.state.model,
                "dim": self.state.dim,
                "vectors": self.size,
                "tombstones": len(self.ids) - self.size,
                "unsaved_delta": len(self._delta),
                "last_vector_id": self.state.last_id,
                "in_step": self.state.last_id == self.store.max_vector_id()
                and self.state.epoch == self.store.vector_epoch,
                "rerank_file": str(self._rerank.path) if self._rerank is not None else None,
                "building": None if self.progress is None else self.progress.as_dict(),
            }

    def rerank_bytes(self) -> int:
        """Bytes of the re-rank file (on disk, read through the page cache); 0 without one."""
        return 0 if self._rerank is None else self._rerank.nbytes

    def memory_bytes(self) -> int:
        """Bytes held: the FAISS index (vectors, graph, lists or codes), the delta and the row arrays."""
        with self.lock:
            main = 0 if self._main is None else estimate_bytes(self._main, self.state.kind, self.state.dim)
            return main + self._delta.nbytes + self.ids.nbytes + self.assets.nbytes + self.alive.nbytes
