"""Where the writing thread of ``assetlens import`` spends its time, per row and per SQL statement.

``bench_import.py`` gives the end-to-end rows per second; this tells which statement to work on.
The rows are read and checked first (what the import's reading thread does beside), then written
batch by batch as ``import_vectors`` writes them, with every statement of the library's connection
timed (wall and, for COMMIT, the thread's CPU). Run on demand (pytest does not collect it)::

    python tests/benchmarks/prof_import.py --rows 300000 [--batch-rows 10000]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_cli import REPO
from bench_import import corpus
from cpu_info import cpu_name
from search_corpus import MODEL

from assetlens.search.catalog import vector_import
from assetlens.search.catalog.import_rows import checked_batches
from assetlens.search.store import Store


class TimedConnection:
    """The library's connection, timing each statement by its first words."""

    def __init__(self, db: sqlite3.Connection, times: dict[str, float]) -> None:
        self._db, self._times = db, times

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    def _timed(self, run: Any, sql: str, *args: Any) -> Any:
        started, cpu = time.perf_counter(), time.thread_time()
        out = run(sql, *args)
        key = " ".join(sql.split()[:4])[:48]
        self._times[key] = self._times.get(key, 0.0) + time.perf_counter() - started
        if sql == "COMMIT":
            self._times["COMMIT (thread CPU)"] = (
                self._times.get("COMMIT (thread CPU)", 0.0) + time.thread_time() - cpu
            )
        return out

    def execute(self, sql: str, *args: Any) -> Any:
        return self._timed(self._db.execute, sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:
        return self._timed(self._db.executemany, sql, *args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--batch-rows", type=int, default=10_000)
    parser.add_argument("--corpus-rows", type=int, default=1_000_000, help="the bench_import corpus to read")
    args = parser.parse_args()
    parquet = corpus(REPO / ".bench" / "import" / f"corpus-{args.corpus_rows}", args.corpus_rows)
    found = [("parquet", path) for path in sorted(parquet.glob("*.parquet"))]

    batches = []
    for batch in checked_batches(found, args.batch_rows, 512):
        batches.append(batch)
        if sum(len(b.chunk.uris) for b in batches) >= args.rows:
            break
    rows = sum(len(b.chunk.uris) for b in batches)
    print(f"{cpu_name()}; {rows} rows, batches of {args.batch_rows}")

    folder = Path(tempfile.mkdtemp(dir=REPO / ".bench"))
    try:
        store = Store(folder / "library.db")
        times: dict[str, float] = {}
        store.db = TimedConnection(store.db, times)  # type: ignore[assignment]
        job, tally = store.start_job("import", {}), vector_import._Tally()
        before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        for batch in batches:
            with tally.batch(store, job):
                store.ensure_model(MODEL)
                vector_import._write(store, batch, MODEL, job, tally)
                store.job_progress(job, tally.counts)
        wall, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
        user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
        print(f"writing thread: {wall / rows * 1e6:.1f} us/row ({user / rows * 1e6:.1f} user, "
              f"{system / rows * 1e6:.1f} system)")  # fmt: skip
        for key, seconds in sorted(times.items(), key=lambda item: -item[1])[:12]:
            print(f"  {seconds / rows * 1e6:6.2f} us/row  {key}")
        store.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
