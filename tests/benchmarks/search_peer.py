"""The peer engine of ``bench_search.py``: LanceDB on the same vectors, filters and queries.

The table is written from the benchmark's Parquet shards (the float16 vectors as given, the meta
fields as columns with bitmap scalar indexes); the vector index is LanceDB's IVF-PQ with the same
lists and code size as ours. Queries use a prefilter (the filter applied before the vector search,
LanceDB's exact-filter mode) and re-rank ``refine_factor * k`` candidates on the full vectors, as
ours does, with the lists probed raised under a filter as our planner raises them. Row ``i`` of
the table is row ``i`` of our index (both follow the Parquet order).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from search_corpus import FIELDS, SEED, SELECTIVITIES, Mixture, query_filters


def run_lancedb(
    work: Path, parquet: Path, n: int, dim: int, queries: int, k: int, truth_file: Path
) -> dict[str, Any]:
    import lancedb

    db = lancedb.connect(str(work / "lancedb"))
    out: dict[str, Any] = {"engine": f"lancedb {lancedb.__version__}"}
    nlist = min(4096, 2 ** round(np.log2(max(4 * np.sqrt(n), 16))))
    if "bench" not in db.table_names():
        started = time.perf_counter()

        done = [0]

        def batches() -> Any:
            for shard in sorted(parquet.glob("*.parquet")):
                for batch in pq.ParquetFile(shard).iter_batches(batch_size=65_536):
                    metas = [json.loads(m) for m in batch.column("meta").to_pylist()]
                    columns = {f: pa.array([m[f] for m in metas]) for f in FIELDS}
                    rows = pa.array(np.arange(done[0], done[0] + batch.num_rows))
                    done[0] += batch.num_rows
                    yield pa.record_batch({"row": rows, "vector": batch.column("embedding"), **columns})

        first = next(batches())
        done[0] = 0
        table = db.create_table("bench", data=batches(), schema=first.schema)
        out["write_s"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        # The same lists, code size, training sample (64 per list) and k-means iterations (10) as ours.
        table.create_index(
            metric="dot", num_partitions=nlist, num_sub_vectors=dim // 8, index_type="IVF_PQ",
            sample_rate=64, max_iterations=10,
        )  # fmt: skip
        for f in FIELDS:
            table.create_scalar_index(f, index_type="BITMAP")
        out["index_s"] = round(time.perf_counter() - started, 1)
    table = db.open_table("bench")
    with np.load(truth_file) as loaded:
        truth = {name: loaded[name] for name in loaded.files}
    vectors = Mixture(dim, SEED).sample(queries, SEED + 99, noise=0.3)
    filters = query_filters(queries)
    rows = []
    fractions = {"none": 1.0, "10%": 0.1, "1%": 0.01, "0.1%": 0.001, "0.01%": 0.0001}
    for name in SELECTIVITIES:
        lat, recalls = [], []
        # Our planner's effort schedule: 32 lists unfiltered, times selectivity ** -0.5 under a filter.
        nprobes = int(min(nlist, 32 * fractions[name] ** -0.5))
        for qi, (q, f) in enumerate(zip(vectors, filters[name], strict=True)):
            search = table.search(q.astype(np.float32)).limit(k).nprobes(nprobes).refine_factor(10)
            if f is not None:
                search = search.where(f"{f[0]} = '{f[1]}'", prefilter=True)
            t0 = time.perf_counter()
            found = search.to_arrow()
            lat.append((time.perf_counter() - t0) * 1000)
            expected = set(truth[name][qi][truth[name][qi] >= 0].tolist())
            got = set(found.column("row").to_pylist())
            recalls.append(len(expected & got) / max(len(expected), 1))
        rows.append({"filter": name, "nprobes": nprobes, "p50_ms": round(float(np.percentile(lat, 50)), 2),
                     "p99_ms": round(float(np.percentile(lat, 99)), 2),
                     "recall_at_k": round(float(np.mean(recalls)), 4)})  # fmt: skip
        print(json.dumps({"peer": rows[-1]}), flush=True)
    out["results"] = rows
    return out
