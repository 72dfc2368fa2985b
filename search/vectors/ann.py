"""FAISS building blocks of the vector index: configuration, construction by kind, exact row scans.

Kept apart from :mod:`search.vectors.index` (which keeps an index in step with the store) so the pieces a
planner needs to score rows exactly are plain functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import faiss as _faiss
import numpy as np

KINDS = ("auto", "flat", "hnsw", "ivf", "ivfpq")
IVFPQ_MAX_NLIST = 4096  # list assignment dominates the build: 10M x 4096 centroids takes minutes
# The SWIG module's stubs miss keyword constructors and free functions used here.
faiss: Any = _faiss


@dataclass(frozen=True)
class IndexConfig:
    """How the index is built and searched.

    Memory per vector, for ``dim``-d vectors (``ids``/row arrays add 17 bytes to every kind):

    * ``flat``: ``4 * dim`` (2048 at 512-d), exact;
    * ``hnsw``: ``4 * dim + 8 * hnsw_m`` (about 2340 at 512-d, M=32);
    * ``ivf``: ``4 * dim + 8``;
    * ``ivfpq``: ``pq_m + 8`` in memory (72 at 512-d) plus ``2 * dim`` on disk in the re-rank file
      (:mod:`search.vectors.rerank`), read through the page cache: a shortlist of the codes'
      best is re-ranked exactly on the float16 vectors.

    Attributes:
        kind: ``auto`` (``flat`` up to ``flat_max`` vectors, then ``ivfpq``), ``flat`` (exact),
            ``hnsw``, ``ivf`` or ``ivfpq``.
        flat_max: ``auto`` keeps an exact flat index up to this many vectors.
        hnsw_m: HNSW graph degree (memory: about ``8 * m`` bytes per vector).
        hnsw_ef_construction: HNSW build effort.
        hnsw_ef_search: HNSW search effort for an unfiltered top-10 (the planner raises it with
            the filter's selectivity). Recall grows slowly with it on CLIP-like data: at 1M
            vectors (M=32, efConstruction=64) 64 gave recall@10 0.85, 256 0.94, 512 0.96, 768
            0.97, all within a few milliseconds: the default buys recall, not speed.
        ivf_nlist: IVF lists (None: about ``4 * sqrt(n)``, for ``ivfpq`` at most 4096).
        ivf_nprobe: IVF lists probed for an unfiltered top-10 (``ivf`` and ``ivfpq``).
        pq_m: ``ivfpq`` bytes of code per vector (None: ``dim / 8``, 64 at 512-d; it must divide
            ``dim``).
        rerank: ``ivfpq`` re-ranks at least this many of the codes' best (and ``4 * k``) exactly.
            At 10M x 512-d (nprobe 32) recall@10 was 0.950 with 100, 0.982 with 200 and 0.995
            with 300, for 4 ms either way: the shortlist, not nprobe, limits recall there.
        max_deleted_fraction: Tombstones beyond this fraction make a writer rebuild.
        max_delta: New vectors held beside an ANN index (scored exactly) before being folded in.
    """

    kind: str = "auto"
    flat_max: int = 50_000
    hnsw_m: int = 32
    hnsw_ef_construction: int = 64
    hnsw_ef_search: int = 768
    ivf_nlist: int | None = None
    ivf_nprobe: int = 32
    pq_m: int | None = None
    rerank: int = 300
    max_deleted_fraction: float = 0.1
    max_delta: int = 50_000

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown index kind {self.kind!r}: use one of {', '.join(KINDS)}")

    def kind_for(self, count: int) -> str:
        """The concrete kind for a library of ``count`` vectors."""
        if self.kind != "auto":
            return self.kind
        return "flat" if count <= self.flat_max else "ivfpq"

    def shortlist(self, k: int) -> int:
        """Rows an ``ivfpq`` search takes from the codes for ``k`` exact results."""
        return max(self.rerank, 4 * k)


def new_index(
    kind: str, dim: int, total: int, cfg: IndexConfig, sample: Callable[..., np.ndarray]
) -> tuple[Any, dict[str, int], str]:
    """An empty FAISS index of ``kind`` for ``total`` vectors (IVF trained on ``sample(n, seed=0)``).

    Returns:
        ``(index, parameters for the sidecar, the kind built)``: a flat index when too few
        vectors exist to train IVF lists.
    """
    if kind == "hnsw":
        hnsw = faiss.IndexHNSWFlat(dim, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = cfg.hnsw_ef_construction
        return hnsw, {"m": cfg.hnsw_m, "ef_construction": cfg.hnsw_ef_construction}, "hnsw"
    if kind in ("ivf", "ivfpq"):
        nlist = cfg.ivf_nlist or 2 ** round(math.log2(max(4 * math.sqrt(max(total, 1)), 16)))
        if kind == "ivfpq" and cfg.ivf_nlist is None:
            nlist = min(nlist, IVFPQ_MAX_NLIST)
        training = sample(min(total, 64 * nlist), seed=0)
        nlist = min(nlist, len(training) // 39)  # k-means wants ~39 training points per list
        if kind == "ivfpq" and nlist >= 1 and len(training) >= 39 * 256:  # 256 centroids per sub-space
            m = pq_m(dim, cfg.pq_m)
            ivfpq = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
            ivfpq.cp.niter = 10
            ivfpq.cp.spherical = True  # unit vectors: centroids on the sphere route by cosine
            ivfpq.train(np.ascontiguousarray(training, dtype=np.float32))
            return ivfpq, {"nlist": nlist, "pq_m": m}, "ivfpq"
        if kind == "ivf" and nlist >= 1:
            ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
            ivf.cp.niter = 10  # coarse centroids only route queries: a few iterations are enough
            ivf.train(np.ascontiguousarray(training, dtype=np.float32))
            return ivf, {"nlist": nlist}, "ivf"
        # Too few vectors to train lists: exact until the next rebuild.
    return faiss.IndexFlatIP(dim), {}, "flat"


def pq_m(dim: int, wanted: int | None) -> int:
    """Sub-quantisers of a PQ code: ``wanted`` (or ``dim / 8``), lowered until it divides ``dim``."""
    m = max(1, min(wanted or dim // 8, dim))
    while dim % m:
        m -= 1
    return m


def estimate_bytes(index: Any, kind: str, dim: int) -> int:
    """Bytes a FAISS index holds in memory: vectors, graph links or list ids."""
    n, d = int(index.ntotal), dim
    if kind == "hnsw":
        hnsw = faiss.downcast_index(index).hnsw
        return n * d * 4 + int(hnsw.neighbors.size()) * 4 + int(hnsw.offsets.size()) * 8 + n * 5
    if kind == "ivf":
        nlist = int(faiss.extract_index_ivf(index).nlist)
        return n * (d * 4 + 8) + nlist * d * 4
    if kind == "ivfpq":
        ivf = faiss.extract_index_ivf(index)
        return n * (int(ivf.code_size) + 8) + int(ivf.nlist) * d * 4 + 256 * d * 4
    return n * d * 4


def knn_rows(query: np.ndarray, base: Any, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k inner products of ``query`` with ``base[rows]``, best first, without copying rows.

    ``base`` is a float32 matrix or a FAISS flat index (its storage is read in place). FAISS's
    ``knn_inner_products_by_idx`` runs on one thread with no OpenMP region, which keeps latency
    steady on small machines, and reads each selected row once.
    """
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    k = min(k, len(rows))
    if k == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    if isinstance(base, np.ndarray):
        ptr, total, dim = faiss.swig_ptr(base), base.shape[0], base.shape[1]
    else:
        ptr, total, dim = base.get_xb(), int(base.ntotal), int(base.d)
    vals = np.empty(k, np.float32)
    ids = np.empty(k, np.int64)
    query = np.ascontiguousarray(query, dtype=np.float32)
    faiss.knn_inner_products_by_idx(
        faiss.swig_ptr(query), ptr, faiss.swig_ptr(rows), dim, 1, total, len(rows), k,
        faiss.swig_ptr(vals), faiss.swig_ptr(ids), 0,
    )  # fmt: skip
    keep = ids >= 0
    return vals[keep], ids[keep]


def merge_top(parts: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``k`` of several ``(scores, rows)`` lists, best first (ties by row)."""
    if not parts:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    scores = np.concatenate([p[0] for p in parts])
    rows = np.concatenate([p[1] for p in parts])
    order = np.lexsort((rows, -scores))[:k]
    return scores[order], rows[order]
