"""Filtered vector search at scale: import, index build, the planner against exact search and a peer.

Phases (each cached under ``--workdir``; the heavy ones run in child processes, so the search
process measures only what a server holds):

1. **corpus**: N CLIP-like 512-d vectors (a Gaussian mixture with low-rank clusters and Zipf-sized
   themes, not uniform noise) written as float16 Parquet shards a batch at a time
   (``search_corpus.py``), each row with meta fields whose values give 10%, 1%, 0.1% and 0.01%
   selectivity;
2. **import**: ``search.catalog.vector_import.import_vectors`` (what ``assetlens import`` runs)
   into a new library: rows per second;
3. **build**: ``VectorIndex.build`` (default kind ``auto``: IVF-PQ + the float16 re-rank file):
   seconds, bytes per vector;
4. **truth**: the exact filtered top-k of every query in one pass over the vectors;
5. **search** (this process): load the index, warm the filter columns, then per selectivity Q
   queries through ``Planner.search`` (filter -> column mask -> exact scan or filtered IVF-PQ ->
   exact re-rank -> SQL re-check): p50/p99 latency, recall@k against the truth, paths, and the
   process's resident memory;
6. **peer** (``--peer lancedb``): LanceDB on the same vectors and filters (IVF-PQ, prefilter,
   refine): p50/p99 and recall, and the ratio to the planner.

Run on demand (not collected by pytest)::

    python tests/benchmarks/bench_search.py --vectors 10000000 --queries 100 --peer lancedb --json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from search_corpus import (
    FIELDS,
    MODEL,
    SEED,
    SELECTIVITIES,
    Mixture,
    ground_truth,
    query_filters,
    write_parquet,
)

from assetlens.search.filters import Cmp, compile_filter
from assetlens.search.filters.columns import ColumnCache
from assetlens.search.store import Store
from assetlens.search.vectors.index import IndexConfig, VectorIndex
from assetlens.search.vectors.planner import Planner


def memory() -> dict[str, int]:
    """This process's resident memory (MB): total, anonymous, file-backed, and the peak."""
    fields = {"VmRSS": "rss_mb", "RssAnon": "anon_mb", "RssFile": "file_mb", "VmHWM": "peak_mb"}
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key = line.split(":")[0]
        if key in fields:
            out[fields[key]] = int(line.split()[1]) // 1024
    return out


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def phase_import(db: Path, parquet: Path) -> dict[str, Any]:
    from assetlens.search.catalog.vector_import import import_vectors

    step = [0]

    def progress(done: int, total: int) -> None:
        if done >= step[0]:
            log(f"import: {done}/{total} rows")
            step[0] = done + 1_000_000

    store = Store(db)
    report = import_vectors(store, [parquet], MODEL, progress=progress)
    store.close()
    doc = report.as_dict()
    return {k: doc[k] for k in ("added", "failed", "rows", "seconds", "rows_per_s")}


def phase_build(db: Path, index_dir: Path, kind: str) -> dict[str, Any]:
    step = [0]

    def progress(p: Any) -> None:
        if p.done >= step[0]:
            log(f"build: {p.done}/{p.total} vectors, {p.elapsed_s:.0f} s, ETA {p.eta_s or 0:.0f} s")
            step[0] = p.done + 1_000_000

    started = time.perf_counter()
    index = VectorIndex(Store(db), index_dir, IndexConfig(kind=kind)).build(progress=progress)
    seconds = round(time.perf_counter() - started, 1)
    cpu = round(sum(os.times()[:2]), 1)
    return {"seconds": seconds, "kind": index.kind, "params": index.state.params, "cpu_s": cpu}


def field_values(n: int, shard: int = 1_000_000, batch: int = 65_536) -> dict[str, np.ndarray]:
    """Each row's value index per filter field, replaying the generator's draws (same order)."""
    rng = np.random.default_rng(SEED + 1)
    out: dict[str, list[np.ndarray]] = {f: [] for f in FIELDS}
    for first in range(0, n, shard):
        for start in range(first, min(first + shard, n), batch):
            count = min(batch, first + shard - start, n - start)
            for f, size in FIELDS.items():
                out[f].append(rng.integers(0, size, count))
    return {f: np.concatenate(v) for f, v in out.items()}


def candidate_rows(n: int, filters: dict[str, list[Any]]) -> dict[Any, np.ndarray]:
    values = field_values(n)
    from search_corpus import value

    wanted = {f for per_query in filters.values() for f in per_query if f is not None}
    out: dict[Any, np.ndarray] = {}
    for field, text in wanted:
        size = FIELDS[field]
        index = next(i for i in range(size) if value(field, i) == text)
        out[(field, text)] = np.flatnonzero(values[field] == index)
    return out


def phase_truth(index_dir: Path, n: int, dim: int, queries: int, k: int, out: Path) -> dict[str, Any]:
    started = time.perf_counter()
    state = json.loads((index_dir / "index.json").read_text())
    matrix = np.memmap(index_dir / state["rerank"], dtype="<f2", mode="r", shape=(n, dim))
    q = Mixture(dim, SEED).sample(queries, SEED + 99, noise=0.3)
    filters = query_filters(queries)
    truth = ground_truth(matrix, q, candidate_rows(n, filters), filters, k, log)
    np.savez(out, **{name: np.stack([np.pad(r, (0, k - len(r)), constant_values=-1) for r in rows])
                     for name, rows in truth.items()})  # fmt: skip
    return {"seconds": round(time.perf_counter() - started, 1)}


def phase_search(db: Path, index_dir: Path, args: Any, truth: dict[str, np.ndarray]) -> dict[str, Any]:
    report: dict[str, Any] = {"memory_start": memory()}
    store = Store(db)
    started = time.perf_counter()
    index = VectorIndex(store, index_dir, IndexConfig(kind=args.kind)).sync(save=False)
    load_s = round(time.perf_counter() - started, 1)
    report["index"] = {"kind": index.kind, "params": index.state.params, "load_s": load_s,
                       "memory_bytes_per_vector": round(index.memory_bytes() / index.size, 1),
                       "rerank_bytes_per_vector": round(index.rerank_bytes() / index.size, 1)}  # fmt: skip
    started = time.perf_counter()
    columns = ColumnCache(store)
    columns.warm([f"meta.{f}" for f in FIELDS])
    report["columns"] = {"warm_s": round(time.perf_counter() - started, 1),
                         "bytes_per_asset": round(columns.memory_bytes() / columns.rows, 1)}  # fmt: skip
    report["memory_loaded"] = memory()
    planner = Planner(index, columns, store)
    planner.refresh(force=True)
    queries = Mixture(args.dim, SEED).sample(args.queries, SEED + 99, noise=0.3)
    filters = query_filters(args.queries)
    for name in SELECTIVITIES:  # the cache's candidates are SQL's: check one filter of each
        f = filters[name][0]
        if f is not None:
            sql, params = compile_filter(Cmp(f"meta.{f[0]}", "eq", f[1]))
            expected = set(store.matching_asset_ids(sql, params).tolist())
            assert (
                set(columns.ids.view[columns.evaluate(Cmp(f"meta.{f[0]}", "eq", f[1]))].tolist()) == expected
            )
    rows = []
    for name in SELECTIVITIES:
        lat, recalls, paths = [], [], {}
        for qi, (q, f) in enumerate(zip(queries, filters[name], strict=True)):
            condition = None if f is None else Cmp(f"meta.{f[0]}", "eq", f[1])
            t0 = time.perf_counter()
            result = planner.search(q, condition, args.k)
            lat.append((time.perf_counter() - t0) * 1000)
            expected = truth[name][qi]
            expected_ids = set(index.ids[expected[expected >= 0]].tolist())
            recalls.append(len(expected_ids & {h.vector_id for h in result.hits}) / max(len(expected_ids), 1))
            paths[result.path] = paths.get(result.path, 0) + 1
        rows.append({"filter": name, "p50_ms": round(float(np.percentile(lat, 50)), 2),
                     "p99_ms": round(float(np.percentile(lat, 99)), 2),
                     "recall_at_k": round(float(np.mean(recalls)), 4), "paths": paths})  # fmt: skip
        log(json.dumps(rows[-1]))
    report["results"] = rows
    report["memory_end"] = memory()
    return report


def run_child(function: Any, *args: Any) -> Any:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(function, args)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--kind", default="auto", choices=["auto", "flat", "hnsw", "ivf", "ivfpq"])
    parser.add_argument("--peer", choices=["none", "lancedb"], default="none")
    parser.add_argument("--workdir", type=Path, default=Path(".bench/search"))
    parser.add_argument("--rebuild-index", action="store_true", help="Build the index even if cached.")
    parser.add_argument("--json", action="store_true", help="Print one JSON document at the end.")
    args = parser.parse_args()

    work = (args.workdir / f"v2-n{args.vectors}-d{args.dim}").resolve()
    parquet, db, index_dir = work / "parquet", work / "library" / "assetlens.db", work / f"index-{args.kind}"
    work.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_start": os.getloadavg()},
        "vectors": args.vectors, "dim": args.dim, "queries": args.queries, "k": args.k,
    }  # fmt: skip
    cached = work / "phases.json"
    phases = json.loads(cached.read_text()) if cached.exists() else {}

    def save() -> None:
        cached.write_text(json.dumps(phases, indent=2))

    if "corpus" not in phases:
        started = time.perf_counter()
        write_parquet(parquet, args.vectors, args.dim, log)
        phases["corpus"] = {"seconds": round(time.perf_counter() - started, 1)}
        save()
    if "import" not in phases:
        for p in db.parent.glob("assetlens.db*"):
            p.unlink()
        db.parent.mkdir(parents=True, exist_ok=True)
        phases["import"] = run_child(phase_import, db, parquet)
        save()
    build_key = f"build-{args.kind}"
    if build_key not in phases or args.rebuild_index:
        phases[build_key] = run_child(phase_build, db, index_dir, args.kind)
        phases.pop(f"truth-{args.kind}", None)
        save()
    truth_file = work / f"truth-q{args.queries}.npz"
    if not truth_file.exists():
        phases["truth"] = run_child(
            phase_truth, index_dir, args.vectors, args.dim, args.queries, args.k, truth_file
        )
        save()
    report["phases"] = phases
    with np.load(truth_file) as loaded:
        truth = {name: loaded[name] for name in loaded.files}
    report["search"] = phase_search(db, index_dir, args, truth)
    if args.peer == "lancedb":
        from search_peer import run_lancedb

        peer = run_child(run_lancedb, work, parquet, args.vectors, args.dim, args.queries, args.k, truth_file)
        report["peer"] = peer
        for ours, theirs in zip(report["search"]["results"], peer["results"], strict=True):
            ours["peer_p50_ratio"] = round(theirs["p50_ms"] / max(ours["p50_ms"], 1e-9), 2)
    report["machine"]["load_end"] = os.getloadavg()
    print(json.dumps(report, indent=2) if args.json else json.dumps(report["search"]["results"], indent=2))
    (work / f"report-{args.kind}.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
