"""Candidate pairs for near-duplicate checks: CLIP neighbours from a FAISS index, never all pairs.

Two near-duplicates are each other's close CLIP neighbours, so each frame asks an index for its
neighbours at or above a similarity floor, and only those pairs are measured
(:func:`search.duplicates.compare.verify`). Two ways in:

* :func:`neighbour_pairs`: many frames at once (comparing a whole library, or a large ingest). A
  temporary index over every frame: exact (flat, a range search) up to :data:`EXACT_MAX` frames,
  above that IVF with 8-bit scalar codes (scores re-measured exactly afterwards);
* :func:`index_pairs`: a few frames (what an ingest added) against the library's own vector index,
  kept in step with the store.

Either way a frame keeps at most ``k`` neighbours, best first: with a semantic model, copies of a
picture are its nearest neighbours; asking for more when all ``k`` pass the floor (up to
:data:`MAX_NEIGHBOURS`) keeps a library of look-alikes (a packshot series) from hiding one.
"""

from __future__ import annotations

import math
from typing import Any

import faiss as _faiss
import numpy as np

from assetlens.search.store import Store
from assetlens.search.vectors.index import VectorIndex

faiss: Any = _faiss

EXACT_MAX = 20_000
"""Frames up to which the candidate search is exact (a flat index)."""
MAX_NEIGHBOURS = 1024
"""Most neighbours one frame is compared with."""
NPROBE = 16
"""IVF lists probed per frame above :data:`EXACT_MAX` (near-duplicates share a list or a neighbour)."""
_CHUNK = 8192


def neighbour_pairs(
    vectors: np.ndarray, owners: np.ndarray, floor: float, k: int = 64, queries: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Asset pairs whose frames are CLIP neighbours at ``floor`` or above.

    Args:
        vectors: ``(F, dim)`` unit vectors of every frame.
        owners: The asset id of each frame.
        floor: Least cosine of a neighbour.
        k: Neighbours kept per frame (more when all pass the floor, up to :data:`MAX_NEIGHBOURS`).
        queries: Rows of the frames that ask (None: every frame).

    Returns:
        ``(a, b)`` asset ids of each candidate pair, ``a < b``, each pair once.
    """
    n = len(vectors)
    rows = np.arange(n) if queries is None else np.asarray(queries, np.int64)
    if n < 2 or not len(rows):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    index = _index(vectors)
    margin = 0.0 if n <= EXACT_MAX else 0.03  # 8-bit codes blur scores a little: verify decides
    found: list[tuple[np.ndarray, np.ndarray]] = []
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        queries_f32 = np.ascontiguousarray(vectors[chunk], dtype=np.float32)
        qi, hits = _search(index, queries_f32, floor - margin, k)
        found.append((owners[chunk[qi]], owners[hits]))
    a = np.concatenate([f[0] for f in found])
    b = np.concatenate([f[1] for f in found])
    return _unique_pairs(a, b)


def _index(vectors: np.ndarray) -> Any:
    n, dim = vectors.shape
    if n <= EXACT_MAX:
        index = faiss.IndexFlatIP(dim)
    else:
        nlist = int(min(65536, 4 * math.sqrt(n)))
        index = faiss.IndexIVFScalarQuantizer(
            faiss.IndexFlatIP(dim), dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        sample = np.random.default_rng(0).choice(n, min(n, 40 * nlist), replace=False)
        index.train(np.ascontiguousarray(vectors[np.sort(sample)], dtype=np.float32))
        index.nprobe = NPROBE
    for start in range(0, n, 65536):
        index.add(np.ascontiguousarray(vectors[start : start + 65536], dtype=np.float32))
    return index


def _search(index: Any, queries: np.ndarray, floor: float, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``(query row, neighbour row)`` of the up-to-``k`` best neighbours at ``floor`` or above;
    a query whose ``k`` all pass asks again for 4 times as many (up to :data:`MAX_NEIGHBOURS`),
    alone: the others keep what they found."""
    found_q: list[np.ndarray] = []
    found_h: list[np.ndarray] = []
    rows = np.arange(len(queries))
    want = min(k, index.ntotal)
    while len(rows):
        scores, hits = index.search(queries[rows], want)
        keep = (scores >= floor) & (hits >= 0)
        full = keep[:, -1]
        if want >= min(MAX_NEIGHBOURS, index.ntotal):
            full[:] = False
        qi, col = np.nonzero(keep & ~full[:, None])
        found_q.append(rows[qi])
        found_h.append(hits[qi, col])
        rows = rows[full]
        want = min(want * 4, MAX_NEIGHBOURS, index.ntotal)
    return np.concatenate(found_q), np.concatenate(found_h)


def index_pairs(
    store: Store, index: VectorIndex, asset_ids: list[int], floor: float, k: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Asset pairs between ``asset_ids`` and their CLIP neighbours in the library's index (synced)."""
    if index.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    vectors = store.vectors_by_asset(asset_ids)
    a: list[int] = []
    b: list[int] = []
    for asset_id, (frames, _) in vectors.items():
        want = min(k, index.size)
        while True:
            scores, ids = index.search(frames, want)
            if not (scores[:, -1] >= floor).any() or want >= min(MAX_NEIGHBOURS, index.size):
                break
            want = min(want * 4, MAX_NEIGHBOURS, index.size)
        close = ids[scores >= floor]
        owners = {owner for owner, _ in store.vector_owners(close.tolist()).values()}
        for other in owners - {asset_id}:
            a.append(asset_id)
            b.append(other)
    return _unique_pairs(np.array(a, np.int64), np.array(b, np.int64))


def _unique_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keep = a != b
    lo, hi = np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])
    if not len(lo):
        return lo, hi
    packed = np.unique(np.stack([lo, hi], axis=1), axis=0)
    return packed[:, 0], packed[:, 1]
