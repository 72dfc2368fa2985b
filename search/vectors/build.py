"""Building an index from every vector of the store, beside live searches.

A build reads the store through its own read-only connection and produces a :class:`Snapshot`
(the FAISS index, its row arrays, its sidecar state and, for ``ivfpq``, the float16 re-rank file)
without touching the index that searches use; :class:`search.vectors.index.VectorIndex` then swaps
it in under its lock, in one step. Both cores work: a reader thread pulls batches out of SQLite
(and converts float16 to float32) while FAISS assigns and encodes the previous batch with OpenMP.
:class:`BuildProgress` gives the rate and the time left while it runs.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assetlens.search.prefetch import prefetch
from assetlens.search.store import Store
from assetlens.search.vectors.ann import IndexConfig, new_index
from assetlens.search.vectors.rerank import RerankFile, write_rerank_file

BATCH = 65536


@dataclass(frozen=True)
class BuildProgress:
    """How far a build is.

    Attributes:
        done: Vectors added so far.
        total: Vectors to add.
        elapsed_s: Seconds since the build started (training included).
        eta_s: Seconds left at the rate of the vectors added so far (None before the first batch).
    """

    done: int
    total: int
    elapsed_s: float
    eta_s: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"done": self.done, "total": self.total, "elapsed_s": round(self.elapsed_s, 1),
                "eta_s": None if self.eta_s is None else round(self.eta_s, 1)}  # fmt: skip


@dataclass
class Snapshot:
    """A built index, not yet in use: what :meth:`VectorIndex._install` swaps in."""

    main: Any
    ids: np.ndarray
    assets: np.ndarray
    kind: str
    params: dict[str, int]
    dim: int
    last_id: int
    rerank: RerankFile | None = None  # ivfpq only


def build_snapshot(
    store_path: Path,
    data_dir: Path,
    config: IndexConfig,
    progress: Callable[[BuildProgress], None] | None = None,
) -> Snapshot:
    """Build an index over every vector the store holds now.

    Args:
        store_path: The library's SQLite file (opened read-only here).
        data_dir: Where the re-rank file of an ``ivfpq`` index is written (a new name, never one
            in use).
        config: Kind (``auto`` picks by size) and parameters.
        progress: Called after every batch.
    """
    started = time.perf_counter()
    store = Store(store_path, readonly=True)
    try:
        top, total = store.max_vector_id(), store.count_vectors()
        dim = (
            store.vector_dim() or 1
        )  # empty: any dimension works until vectors arrive (then the model changes)
        main, params, kind = new_index(config.kind_for(total), dim, total, config, store.sample_vectors)
        ids: list[np.ndarray] = [np.zeros(0, np.int64)]
        assets: list[np.ndarray] = [np.zeros(0, np.int64)]
        rerank_path = Path(data_dir) / f"index.{secrets.token_hex(6)}.f16" if kind == "ivfpq" else None
        added = [0]
        add_started = time.perf_counter()

        def batches() -> Iterator[np.ndarray]:
            rows = store.iter_vector_rows(upto_id=top, batch=BATCH)
            for vid, owner, vectors in prefetch(rows, "index-build-reader", depth=2):
                main.add(vectors)  # FAISS spreads assignment and encoding over the cores
                ids.append(vid)
                assets.append(owner)
                added[0] += len(vid)
                if progress is not None:
                    rate = added[0] / max(time.perf_counter() - add_started, 1e-9)
                    eta = (total - added[0]) / rate if rate > 0 else None
                    progress(BuildProgress(added[0], total, time.perf_counter() - started, eta))
                yield vectors

        rerank = None
        if rerank_path is not None:
            rerank_path.parent.mkdir(parents=True, exist_ok=True)
            rows = write_rerank_file(rerank_path, batches())
            rerank = RerankFile(rerank_path, dim, rows)
        else:
            for _ in batches():
                pass
    finally:
        store.close()
    all_ids = np.concatenate(ids)
    last = int(all_ids[-1]) if len(all_ids) else top
    return Snapshot(main, all_ids, np.concatenate(assets), kind, params, dim, last, rerank)
