"""The re-rank store: every vector of a compressed index, as float16 rows in a memory-mapped file.

A compressed index (IVF-PQ) keeps ~64 bytes of codes per vector in memory; its scores are
approximate. This file, written beside it, holds the exact vectors (float16, as the store keeps
them: ``2 * dim`` bytes per vector) in index-row order, so that

* a shortlist found on the codes is re-ranked exactly (a few hundred rows per query), and
* a narrow filter's candidates are scanned exactly (the planner's exact path),

without holding the vectors in memory: the operating system's page cache serves the rows that
queries touch. Pages a process has mapped count in its resident size, and the kernel maps up to
64 KiB around every page fault (fault-around, whatever ``MADV_RANDOM`` says), so a scan of random
rows maps far more than it reads: the store counts 64 KiB per row read and hands the pages back
(``madvise(MADV_DONTNEED)``; the page cache keeps them, a later read is a minor fault) after
every ``release_bytes``. Without that, 200 queries at 1M vectors left 900 MB of the file mapped.

Rows are appended in place as the index grows (:meth:`RerankFile.append`); a rebuild writes a new
file under a new name, so a process still reading the old one is never disturbed.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from assetlens.search.vectors.ann import knn_rows, merge_top

DTYPE = np.dtype("<f2")
RELEASE_BYTES = 256 << 20
FAULT_AROUND = 64 << 10  # bytes the kernel may map per page fault (fault_around_bytes' default)


class RerankFile:
    """A read view of ``rows`` float16 vectors of ``dim`` in ``path`` (more rows may follow).

    Args:
        path: The file.
        dim: Vector dimension.
        rows: Rows this view covers (the index's row count; later rows are ignored).
        release_bytes: Hand mapped pages back to the OS after reads that may have mapped this much.

    Raises:
        OSError: The file is missing or shorter than ``rows`` rows.
    """

    def __init__(self, path: Path, dim: int, rows: int, release_bytes: int = RELEASE_BYTES) -> None:
        self.path, self.dim, self.rows = Path(path), dim, rows
        self.row_bytes = dim * DTYPE.itemsize
        self.release_bytes = release_bytes
        self._read = 0
        self._map: mmap.mmap | None = None
        self.matrix = np.zeros((0, dim), DTYPE)
        self._remap()

    def _remap(self) -> None:
        size = os.path.getsize(self.path)
        if size < self.rows * self.row_bytes:
            raise OSError(f"{self.path} holds {size // self.row_bytes} rows, {self.rows} expected")
        old = self._map
        if self.rows:
            with open(self.path, "rb") as f:
                self._map = mmap.mmap(f.fileno(), self.rows * self.row_bytes, access=mmap.ACCESS_READ)
            self._map.madvise(mmap.MADV_RANDOM)  # rows are read a few at a time: no read-ahead
            self.matrix = np.frombuffer(self._map, DTYPE).reshape(self.rows, self.dim)
        if old is not None:
            del old  # arrays over it may live on in callers; the mapping closes with the last one

    def append(self, vectors: np.ndarray) -> None:
        """Write rows after the ones this view covers (cutting any leftover of a crashed append)."""
        with open(self.path, "r+b") as f:
            f.truncate(self.rows * self.row_bytes)
            f.seek(0, os.SEEK_END)
            f.write(np.ascontiguousarray(vectors, dtype=DTYPE).tobytes())
            f.flush()
            os.fsync(f.fileno())
        self.rows += len(vectors)
        self._remap()

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """The given rows (sorted ascending reads fastest) as float32."""
        self._prefetch(rows)
        out = self.matrix[rows].astype(np.float32)
        self._read += len(rows) * max(self.row_bytes, FAULT_AROUND)
        if self._read >= self.release_bytes and self._map is not None:
            self._read = 0
            self._map.madvise(mmap.MADV_DONTNEED)  # drops this process's pages, not the page cache
        return out

    def _prefetch(self, rows: np.ndarray) -> None:
        """Ask for every row's pages at once: rows not in the page cache are read from disk in
        parallel instead of one page fault after another (1000 cold rows: 35 ms instead of 120)."""
        if self._map is None or not len(rows):
            return
        starts = np.asarray(rows, dtype=np.int64) * self.row_bytes
        first = starts - starts % mmap.PAGESIZE
        for begin, length in zip(first.tolist(), (starts + self.row_bytes - first).tolist(), strict=True):
            self._map.madvise(mmap.MADV_WILLNEED, begin, length)

    def top(
        self, query: np.ndarray, rows: np.ndarray, k: int, chunk: int = 8192
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k inner products among ``rows``, best first (ties by row)."""
        rows = np.asarray(rows, dtype=np.int64)
        parts = []
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            # FAISS's one-thread kernel: a BLAS matrix-vector product here wakes its thread pool
            # and took 14-21 ms for 1000 rows on two busy cores (0.1 ms alone).
            scores, local = knn_rows(query, self.vectors(part), np.arange(len(part)), k)
            parts.append((scores, part[local]))
        return merge_top(parts, k)

    @property
    def nbytes(self) -> int:
        """Bytes of the rows covered (on disk, not in memory)."""
        return self.rows * self.row_bytes


def write_rerank_file(path: Path, batches: Iterable[np.ndarray]) -> int:
    """Write float16 rows from ``batches`` to a new file (synced); returns the rows written."""
    rows = 0
    with open(path, "wb") as f:
        for batch in batches:
            f.write(np.ascontiguousarray(batch, dtype=DTYPE).tobytes())
            rows += len(batch)
        f.flush()
        os.fsync(f.fileno())
    return rows
