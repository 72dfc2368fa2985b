"""The float16 re-rank file: exact scores, appends, and mapped pages handed back."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from assetlens.search.vectors.rerank import RerankFile, write_rerank_file


def mapped_kb(path: Path) -> int:
    """Resident KB of this process's mappings of ``path`` (from /proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if "-" in line.split(" ")[0] and len(line.split()) >= 5:
            inside = line.rstrip().endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


def test_scores_are_exact_and_appends_extend_the_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((3000, 64)).astype(np.float16)
    path = tmp_path / "index.x.f16"
    assert write_rerank_file(path, [vectors[:1000], vectors[1000:2000]]) == 2000
    rerank = RerankFile(path, 64, 2000)
    rerank.append(vectors[2000:])
    query = rng.standard_normal(64).astype(np.float32)
    rows = np.arange(0, 3000, 3)

    scores, found = rerank.top(query, rows, 5)

    exact = vectors[rows].astype(np.float32) @ query
    np.testing.assert_array_equal(found, rows[np.argsort(-exact)[:5]])
    np.testing.assert_allclose(scores, np.sort(exact)[::-1][:5], rtol=1e-5)
    assert rerank.rows == 3000 and rerank.nbytes == 3000 * 64 * 2


def test_reading_rows_maps_nothing_into_the_process(tmp_path: Path) -> None:
    # Through mmap, the kernel maps whole page-cache folios around each fault: random rows of a
    # large file then fill the process's resident size. Rows are read with pread instead.
    rows, dim = 65_536, 512  # a 64 MB file
    path = tmp_path / "index.y.f16"
    write_rerank_file(path, [np.ones((rows, dim), np.float16)])
    rerank = RerankFile(path, dim, rows)
    rng = np.random.default_rng(1)
    for _ in range(40):
        scores, _ = rerank.top(np.ones(dim, np.float32), np.sort(rng.choice(rows, 1000, replace=False)), 10)
        assert np.allclose(scores, dim)
    assert mapped_kb(path) == 0
