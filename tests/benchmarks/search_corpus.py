"""The corpus of ``bench_search.py``: CLIP-like vectors written as Parquet a batch at a time, filters
of fixed selectivities, and the exact (filtered) top-k of every query in one pass over the vectors.

Nothing here holds all vectors at once: 10M x 512-d float16 is 10 GB on disk and at most one batch
(64k rows) in memory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SEED = 20240615
MODEL = "bench@mixture"
REGIONS = ["DE", "AT", "CH", "FR", "IT", "ES", "NL", "BE", "PL", "SE"]  # 10% each
# Filter fields: uniform values, so a value keeps 1/values of the assets.
FIELDS = {"region": 10, "sku_family": 100, "campaign": 1000, "lot": 10_000}
SELECTIVITIES = {"none": None, "10%": "region", "1%": "sku_family", "0.1%": "campaign", "0.01%": "lot"}


class Mixture:
    """Clustered unit vectors: a shared mean direction, 1000 themes, each a 24-d subspace plus noise."""

    def __init__(self, dim: int, seed: int, clusters: int = 1000, rank: int = 24) -> None:
        rng = np.random.default_rng(seed)
        self.dim, self.rank, self.clusters = dim, rank, clusters
        mean = rng.standard_normal(dim).astype(np.float32)
        self.mean = mean / np.linalg.norm(mean)
        centers = rng.standard_normal((clusters, dim)).astype(np.float32)
        self.centers = centers / np.linalg.norm(centers, axis=1, keepdims=True)
        self.bases = rng.standard_normal((clusters, rank, dim)).astype(np.float32) / np.sqrt(rank)
        weights = 1.0 / np.arange(1, clusters + 1) ** 0.7  # a few big themes, a long tail
        self.weights = weights / weights.sum()

    def sample(self, n: int, seed: int, noise: float = 0.2) -> np.ndarray:
        rng = np.random.default_rng(seed)
        labels = rng.choice(self.clusters, size=n, p=self.weights)
        out = np.empty((n, self.dim), np.float32)
        order = np.argsort(labels, kind="stable")
        bounds = np.searchsorted(labels[order], np.arange(self.clusters + 1))
        for c in range(self.clusters):
            rows = order[bounds[c] : bounds[c + 1]]
            if len(rows):
                z = rng.standard_normal((len(rows), self.rank), dtype=np.float32)
                v = 0.45 * self.mean + 0.6 * self.centers[c] + 0.55 * (z @ self.bases[c]) / np.sqrt(self.dim)
                v += noise * rng.standard_normal(v.shape, dtype=np.float32) / np.sqrt(self.dim)
                out[rows] = v
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def value(field: str, i: int) -> str:
    """The text of value ``i`` of a filter field."""
    return REGIONS[i] if field == "region" else f"{field[0]}{i:05d}"


def write_parquet(
    folder: Path, n: int, dim: int, log: Any, shard: int = 1_000_000, batch: int = 65_536
) -> None:
    """``n`` rows (uri, float16 embedding, meta JSON with the filter fields) in shards of ``shard`` rows."""
    folder.mkdir(parents=True, exist_ok=True)
    mixture = Mixture(dim, SEED)
    rng = np.random.default_rng(SEED + 1)
    schema = pa.schema(
        [("uri", pa.string()), ("embedding", pa.list_(pa.float16(), dim)), ("meta", pa.string())],
        metadata={"assetlens.model": MODEL},
    )
    for number, first in enumerate(range(0, n, shard)):
        with pq.ParquetWriter(folder / f"part-{number:04d}.parquet", schema) as writer:
            for start in range(first, min(first + shard, n), batch):
                count = min(batch, first + shard - start, n - start)
                vectors = mixture.sample(count, SEED + 2 + start).astype(np.float16)
                picks = {f: rng.integers(0, size, count) for f, size in FIELDS.items()}
                metas = [
                    json.dumps({f: value(f, int(picks[f][i])) for f in FIELDS}, separators=(",", ":"))
                    for i in range(count)
                ]
                uris = [
                    f"s3://bench/{(start + i) // 1000:05d}/asset{start + i:08d}.jpg" for i in range(count)
                ]
                embedding = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim)
                writer.write_batch(
                    pa.record_batch([pa.array(uris), embedding, pa.array(metas)], schema=schema)
                )
        log(f"parquet: {min(first + shard, n)}/{n} rows")


def query_filters(queries: int) -> dict[str, list[tuple[str, str] | None]]:
    """Per selectivity, each query's ``(field, value)`` (drawn at random, seeded) or None."""
    rng = np.random.default_rng(SEED + 7)
    out: dict[str, list[tuple[str, str] | None]] = {}
    for name, field in SELECTIVITIES.items():
        out[name] = [
            None if field is None else (field, value(field, int(rng.integers(0, FIELDS[field]))))
            for _ in range(queries)
        ]
    return out


def ground_truth(
    matrix: np.ndarray,
    queries: np.ndarray,
    candidates: dict[tuple[str, str] | None, np.ndarray],
    filters: dict[str, list[tuple[str, str] | None]],
    k: int,
    log: Any,
    chunk: int = 131_072,
) -> dict[str, list[np.ndarray]]:
    """Exact top-k rows of every (query, filter) in one pass over ``matrix`` (float16 rows, memory-mapped).

    Args:
        matrix: Every vector, by index row.
        queries: ``(Q, dim)`` float32.
        candidates: Sorted rows that pass each filter (None: every row).
        filters: Per selectivity, each query's filter.
        k: Neighbours.
    """
    groups: dict[tuple[str, str] | None, list[int]] = {}
    for per_query in filters.values():
        for qi, f in enumerate(per_query):
            groups.setdefault(f, [])
            if qi not in groups[f]:
                groups[f].append(qi)
    best: dict[tuple[Any, int], tuple[np.ndarray, np.ndarray]] = {}
    n = matrix.shape[0]
    for start in range(0, n, chunk):
        block = np.asarray(matrix[start : start + chunk], dtype=np.float32)
        for f, members in groups.items():
            rows = candidates.get(f)
            if rows is None:
                local = np.arange(len(block))
            else:
                lo, hi = np.searchsorted(rows, [start, start + len(block)])
                local = rows[lo:hi] - start
            if not len(local):
                continue
            scores = block[local] @ queries[members].T  # (rows, group queries)
            for column, qi in enumerate(members):
                s = scores[:, column]
                top = np.argpartition(-s, min(k, len(s)) - 1)[:k] if len(s) > k else np.arange(len(s))
                found = (s[top], local[top] + start)
                old = best.get((f, qi))
                if old is not None:
                    found = (np.concatenate([old[0], found[0]]), np.concatenate([old[1], found[1]]))
                order = np.argsort(-found[0], kind="stable")[:k]
                best[(f, qi)] = (found[0][order], found[1][order])
        if (start // chunk) % 16 == 0:
            log(f"ground truth: {min(start + chunk, n)}/{n} rows")
    return {
        name: [best.get((f, qi), (None, np.zeros(0, np.int64)))[1] for qi, f in enumerate(per_query)]
        for name, per_query in filters.items()
    }
