"""Filtered vector search at scale: the AssetLens planner against exact FAISS flat search.

Builds (once, cached under ``.bench/search/``) a synthetic library of N assets through the Store's
own methods: one 512-d vector each, drawn from a Gaussian mixture with low-rank clusters and
Zipf-sized themes (so neighbourhoods look like CLIP embeddings, not uniform noise), ten metadata
fields (user meta and embedded) whose values give filters of 0.1%, 1%, 10% and 50% selectivity,
and three tags per asset. Then, for unfiltered search and each selectivity (a fresh random value
per query, so every query has its own candidate set), it measures over Q queries (embedding
excluded):

- planner: ``search.vectors.planner.Planner.search`` end to end (filter -> column mask -> exact scan or
  HNSW with an IDSelector -> SQL re-check of the hits), p50/p99 latency, recall@k, path taken;
- baseline: exact FAISS ``IndexFlatIP`` over all vectors with an ``IDSelectorBitmap`` of the same
  candidates (the mask given, not timed), in the same process; its results are the ground truth.

Plus the one-off costs: store build, index build (or load) time, column-cache warm-up, and memory
(RSS growth and bytes per vector of the index, bytes per asset of the column cache).

Run on demand (not collected by pytest)::

    python tests/benchmarks/bench_search.py [--vectors 1000000] [--dim 512] [--queries 200] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import faiss as _faiss
import numpy as np

from assetlens.search.filters import Cmp, Filter, compile_filter
from assetlens.search.filters.columns import ColumnCache
from assetlens.search.store import Store, Tag
from assetlens.search.vectors.index import IndexConfig, VectorIndex
from assetlens.search.vectors.planner import Planner, PlannerConfig

faiss: Any = _faiss  # the SWIG stubs miss keyword constructors
SEED = 20240615
CORPUS_VERSION = 1  # bump when the generation below changes
REGIONS = ["DE", "AT", "CH", "FR", "IT", "ES", "NL", "BE", "PL", "SE"]  # 10% each
KEYWORDS = [f"kw{i:02d}" for i in range(50)]
TAGS = [f"tag{i:03d}" for i in range(200)]
CHANNELS = ["web", "print", "social", "tv"]


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


def rss() -> int:
    """Resident memory of this process, bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def build_store(path: Path, n: int, dim: int, log: Any) -> float:
    """The synthetic library, through Store methods, 20k assets per transaction; returns seconds."""
    started = time.perf_counter()
    mixture = Mixture(dim, SEED)
    rng = np.random.default_rng(SEED + 1)
    store = Store(path)
    chunk = 20_000
    for start in range(0, n, chunk):
        count = min(chunk, n - start)
        vectors = mixture.sample(count, SEED + 2 + start)
        campaign = rng.integers(0, 1000, count)
        family = rng.integers(0, 100, count)
        region = rng.integers(0, 10, count)
        approved = rng.random(count) < 0.5
        priority = rng.integers(0, 1000, count)
        expires = rng.integers(0, 3650, count)
        rating = np.round(rng.uniform(0, 5, count), 2)
        photographer = rng.integers(0, 500, count)
        kinds = rng.choice(["image", "video", "audio"], count, p=[0.8, 0.15, 0.05])
        first = rng.integers(0, len(TAGS), count)  # three distinct tags: offsets from disjoint ranges
        tags = np.stack(
            [first, first + rng.integers(1, 100, count), first + rng.integers(100, 200, count)], 1
        )
        tags %= len(TAGS)
        scores = rng.uniform(0.15, 0.35, (count, 3))
        with store.transaction():
            for i in range(count):
                n_kw = int(rng.integers(1, 4))
                meta = {
                    "campaign": f"c{campaign[i]:04d}", "sku_family": f"f{family[i]:02d}",
                    "region": REGIONS[region[i]], "approved": bool(approved[i]), "priority": int(priority[i]),
                    "rights_expires": str(np.datetime64("2020-01-01") + int(expires[i])),
                    "keywords": [KEYWORDS[j] for j in rng.choice(50, n_kw, replace=False)],
                    "channel": [c for c in CHANNELS if rng.random() < 0.5],
                }  # fmt: skip
                embedded = {"rating": float(rating[i]), "photographer": f"p{photographer[i]:03d}"}
                aid = store.upsert_asset({
                    "uri": f"/library/{(start + i) // 1000:04d}/asset{start + i:07d}.jpg",
                    "content_hash": f"{start + i:016x}", "kind": str(kinds[i]), "mime": "image/jpeg",
                    "size": int(rng.integers(10_000, 20_000_000)), "mtime": 1.7e9,
                    "width": 4000, "height": 3000,
                    "created": f"20{int(rng.integers(15, 25))}-0{int(rng.integers(1, 10))}-15T10:00:00Z",
                    "status": "ok", "meta": meta, "embedded": embedded,
                })  # fmt: skip
                store.replace_vectors(aid, "bench@mixture", vectors[i : i + 1], [None])
                store.replace_tags(
                    aid,
                    "clip",
                    [Tag(TAGS[t], float(s), "clip") for t, s in zip(tags[i], scores[i], strict=True)],
                )
        log(f"store: {start + count}/{n} assets ({time.perf_counter() - started:.0f} s)")
    store.close()
    return time.perf_counter() - started


def filters(rng: np.random.Generator, selectivity: str) -> Filter | None:
    """A filter of the given selectivity with a value drawn at random."""
    if selectivity == "0.1%":
        return Cmp("meta.campaign", "eq", f"c{int(rng.integers(0, 1000)):04d}")
    if selectivity == "1%":
        return Cmp("meta.sku_family", "eq", f"f{int(rng.integers(0, 100)):02d}")
    if selectivity in ("3%", "5%"):  # the band around the exact/ANN switch
        families = rng.choice(100, int(selectivity[0]), replace=False)
        return Cmp("meta.sku_family", "in", tuple(f"f{int(f):02d}" for f in families))
    if selectivity == "10%":
        return Cmp("meta.region", "eq", REGIONS[int(rng.integers(0, 10))])
    if selectivity == "50%":
        return Cmp("meta.approved", "eq", bool(rng.integers(0, 2)))
    return None


def percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 2)


SELECTIVITIES = ("none", "0.1%", "1%", "3%", "5%", "10%", "50%")


def ground_truth(
    flat: Any, columns: ColumnCache, index: VectorIndex, queries: np.ndarray, selectivity: str, k: int
) -> dict[str, Any]:
    """Each query's filter, its exact top-k (flat index + IDSelectorBitmap), and the flat latencies."""
    rng = np.random.default_rng(SEED + 7)
    rows_of_vectors = columns.rows_of(index.assets)  # cache row of each index row (= flat row)
    case: dict[str, Any] = {"queries": queries, "filters": [], "truth": [], "latency": [], "candidates": []}
    for q in queries:
        f = filters(rng, selectivity)
        params: Any = None
        if f is not None:
            mask = columns.evaluate(f)[rows_of_vectors]
            case["candidates"].append(int(mask.sum()))
            params = faiss.SearchParameters(sel=faiss.IDSelectorBitmap(np.packbits(mask, bitorder="little")))
        t0 = time.perf_counter()
        _, truth = flat.search(q[None, :], k, params=params)
        case["latency"].append((time.perf_counter() - t0) * 1000)
        case["filters"].append(f)
        case["truth"].append(set(index.ids[truth[0][truth[0] >= 0]].tolist()))
    return case


def run(planner: Planner, case: dict[str, Any], k: int, limit: int | None = None) -> dict[str, Any]:
    """Planner latency, recall@k against the ground truth, and the paths taken."""
    lat: list[float] = []
    recalls: list[float] = []
    paths: dict[str, int] = {}
    for q, f, expected in list(zip(case["queries"], case["filters"], case["truth"], strict=True))[:limit]:
        t0 = time.perf_counter()
        result = planner.search(q, f, k)
        lat.append((time.perf_counter() - t0) * 1000)
        recalls.append(len(expected & {h.vector_id for h in result.hits}) / max(len(expected), 1))
        paths[result.path] = paths.get(result.path, 0) + 1
    return {
        "candidates_mean": int(np.mean(case["candidates"])) if case["candidates"] else planner.index.size,
        "planner_p50_ms": percentile(lat, 50), "planner_p99_ms": percentile(lat, 99),
        "recall_at_k": round(float(np.mean(recalls)), 4), "paths": paths,
        "flat_p50_ms": percentile(case["latency"], 50), "flat_p99_ms": percentile(case["latency"], 99),
    }  # fmt: skip


def sweep(
    index: VectorIndex, columns: ColumnCache, store: Store, cases: dict[str, Any], args: Any, log: Any
) -> list[dict[str, Any]]:
    """Latency and recall of each path at several efforts: what the planner's defaults rest on."""
    out: list[dict[str, Any]] = []
    planner = Planner(index, columns, store)
    efforts = {"none": (64, 128, 256, 384, 512), "50%": (256, 384, 512, 768), "10%": (384, 512, 768, 1024),
               "5%": (768, 1024, 1536, 2048), "3%": (1024, 1536, 2048, 3072)}  # fmt: skip
    for selectivity, choices in efforts.items():
        case = cases[selectivity]
        masks = [
            None if f is None else planner._vector_mask(columns.evaluate(f)) for f in case["filters"][:100]
        ]
        for effort in choices:
            lat, recalls = [], []
            for q, allowed, expected in zip(case["queries"], masks, case["truth"], strict=False):
                t0 = time.perf_counter()
                _, rows = index.search_rows(q, args.k, allowed, effort=effort)
                lat.append((time.perf_counter() - t0) * 1000)
                recalls.append(len(expected & set(index.ids[rows].tolist())) / max(len(expected), 1))
            recall = round(float(np.mean(recalls)), 4)
            out.append({"filter": selectivity, "path": "ann", "effort": effort, "p50_ms": percentile(lat, 50),
                        "p99_ms": percentile(lat, 99), "recall_at_k": recall})  # fmt: skip
            log(json.dumps(out[-1]))
    for selectivity in ("3%", "5%"):
        exact = Planner(index, columns, store, PlannerConfig(exact_max=10**12))
        out.append({"filter": selectivity, "path": "exact", **run(exact, cases[selectivity], args.k, 100)})
        log(json.dumps(out[-1]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--kind", default="hnsw", choices=["flat", "hnsw", "ivf"])
    parser.add_argument("--m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=64)
    parser.add_argument("--ef-search", type=int, default=IndexConfig().hnsw_ef_search)
    parser.add_argument("--exact-max", type=int, default=PlannerConfig().exact_max)
    parser.add_argument("--ann-boost", type=float, default=PlannerConfig().ann_boost)
    parser.add_argument("--workdir", type=Path, default=Path(".bench/search"))
    parser.add_argument("--rebuild-index", action="store_true", help="Build the index even if cached.")
    parser.add_argument("--sweep", action="store_true", help="Also sweep efforts and thresholds.")
    parser.add_argument("--json", action="store_true", help="Print one JSON document.")
    args = parser.parse_args()

    def log(message: str) -> None:
        if not args.json:
            print(message, flush=True)

    work = args.workdir / f"n{args.vectors}-d{args.dim}-v{CORPUS_VERSION}"
    work.mkdir(parents=True, exist_ok=True)
    db, done = work / "assetlens.db", work / "store.complete"
    report: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "faiss": faiss.__version__},
        "vectors": args.vectors, "dim": args.dim, "queries": args.queries, "k": args.k,
    }  # fmt: skip
    if not done.exists():
        db.unlink(missing_ok=True)
        done.write_text(json.dumps({"seconds": round(build_store(db, args.vectors, args.dim, log), 1)}))
    report["store_build_s"] = json.loads(done.read_text())["seconds"]
    store = Store(db)

    config = IndexConfig(
        kind=args.kind,
        hnsw_m=args.m,
        hnsw_ef_construction=args.ef_construction,
        hnsw_ef_search=args.ef_search,
    )
    index_dir = work / f"{args.kind}-m{args.m}-efc{args.ef_construction}"
    built_file = index_dir / "build.json"
    before = rss()
    index = VectorIndex(store, index_dir, config)
    if args.rebuild_index or not built_file.exists():
        log(f"index: building {args.kind} over {args.vectors} vectors")
        index.build(
            progress=lambda done, total: log(f"index: {done}/{total}") if done % 200_000 == 0 else None
        )
        built_file.write_text(json.dumps({"seconds": round(index.build_seconds or 0.0, 1)}))
    started = time.perf_counter()
    index.sync(save=False)
    report["index"] = {
        "kind": index.kind, "params": index.state.params, "ef_search": args.ef_search,
        "build_s": json.loads(built_file.read_text())["seconds"],
        "load_s": round(time.perf_counter() - started, 1),
        "bytes_per_vector": round(index.memory_bytes() / index.size, 1),
        "rss_growth_per_vector": round((rss() - before) / index.size, 1),
    }  # fmt: skip

    before, started = rss(), time.perf_counter()
    columns = ColumnCache(store)
    columns.warm(["meta.campaign", "meta.sku_family", "meta.region", "meta.approved"])
    report["columns"] = {
        "warm_s": round(time.perf_counter() - started, 1),
        "bytes_per_asset": round(columns.memory_bytes() / columns.rows, 1),
        "rss_growth_per_asset": round((rss() - before) / columns.rows, 1),
    }
    planner = Planner(
        index, columns, store, PlannerConfig(exact_max=args.exact_max, ann_boost=args.ann_boost)
    )
    planner.refresh(force=True)

    log("baseline: exact flat index over every vector")
    flat = faiss.IndexFlatIP(args.dim)
    for _, _, vectors in store.iter_vector_rows(batch=65536):
        flat.add(vectors)
    queries = Mixture(args.dim, SEED).sample(args.queries, SEED + 99, noise=0.3)

    cases = {sel: ground_truth(flat, columns, index, queries, sel, args.k) for sel in SELECTIVITIES}
    for selectivity in SELECTIVITIES[1:]:  # the cache's candidates are SQL's: check one filter of each
        f = filters(np.random.default_rng(1), selectivity)
        assert f is not None
        sql, sql_params = compile_filter(f)
        expected_ids = set(store.matching_asset_ids(sql, sql_params).tolist())
        assert set(columns.ids.view[columns.evaluate(f)].tolist()) == expected_ids, selectivity
    table = []
    for selectivity, case in cases.items():
        table.append({"filter": selectivity, **run(planner, case, args.k)})
        log(json.dumps(table[-1]))
    report["results"] = table
    if args.sweep:
        report["sweep"] = sweep(index, columns, store, cases, args, log)
    report["load_average"] = os.getloadavg()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(json.dumps({k: v for k, v in report.items() if k != "results"}, indent=2))
        names = ("filter", "cand", "p50", "p99", "recall", "flat p50", "flat p99")
        print(" ".join(f"{n:>{w}}" for n, w in zip(names, (6, 8, 7, 7, 7, 9, 9), strict=True)), " path")
        for r in table:
            print(
                f"{r['filter']:>6} {r['candidates_mean']:>8} {r['planner_p50_ms']:>7} "
                f"{r['planner_p99_ms']:>7} "
                f"{r['recall_at_k']:>7} {r['flat_p50_ms']:>9} {r['flat_p99_ms']:>9}  {r['paths']}"
            )


if __name__ == "__main__":
    main()
