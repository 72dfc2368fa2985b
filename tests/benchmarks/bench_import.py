"""``assetlens import`` throughput: rows per second of wall and of CPU, against a baseline ref.

The corpus is :mod:`search_corpus`'s (CLIP-like clustered 512-d float16 vectors, each row with a
four-field ``meta``, as ``bench_search.py`` uses), cached under the work dir. Each run is a real
``python -m assetlens.enrich import DIR --no-index --json`` process into a new data dir, so the
figure is what a user's import does (the index build is measured by ``bench_search.py``). With
``--before REF`` the code of git ref REF (extracted beside the work dir and put first on
``PYTHONPATH``) runs the same import, round by round, interleaved with this tree's, so load from
other processes touches both alike; the ratios are per round. Run on demand (pytest does not
collect it)::

    python tests/benchmarks/bench_import.py --rows 1000000 --rounds 2 --before REF [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench_cli import REPO, extract
from ingest_support import machine
from search_corpus import MODEL, write_parquet

# Runs the import as its child and prints the child's report, wall time, CPU time and peak memory.
_LAUNCHER = """
import json, os, subprocess, sys, time
start = time.perf_counter()
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, text=True)
out = child.stdout.read()
_, status, usage = os.wait4(child.pid, 0)
wall = time.perf_counter() - start
code = os.waitstatus_to_exitcode(status)
if code:
    sys.exit(code)
print(json.dumps({"report": json.loads(out), "wall_s": wall,
                  "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024}))
"""


def corpus(folder: Path, rows: int) -> Path:
    """The Parquet corpus of ``rows`` rows (made once: 10M rows take ~20 minutes)."""
    done = folder / "complete"
    if not done.exists():
        shutil.rmtree(folder, ignore_errors=True)
        write_parquet(folder, rows, 512, lambda message: print(message, file=sys.stderr, flush=True))
        done.touch()
    return folder


def run_import(source: Path | None, data_dir: Path, parquet: Path) -> dict[str, Any]:
    """One ``assetlens import`` of ``parquet`` into a new library, by the code at ``source``
    (None: this tree)."""
    shutil.rmtree(data_dir, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETLENS_")}
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(source), env.get("PYTHONPATH", "")])
    cli = [sys.executable, "-m", "assetlens.enrich", "--data-dir", str(data_dir)]
    command = [
        sys.executable,
        "-c",
        _LAUNCHER,
        *cli,
        "import",
        str(parquet),
        "--model",
        MODEL,
        "--no-index",
        "--json",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=data_dir.parent)
    if done.returncode != 0:
        raise RuntimeError(f"import failed: {done.stderr[-2000:]}")
    run = json.loads(done.stdout)
    report = run.pop("report")
    if report["failed"]:
        raise RuntimeError(f"{report['failed']} rows failed: {report['failures'][:3]}")
    shutil.rmtree(data_dir, ignore_errors=True)
    rows = report["rows"]
    return {
        "rows": rows,
        "rows_per_s": round(rows / run["wall_s"]),  # the whole command, start-up included
        "rows_per_cpu_s": round(rows / run["cpu_s"]),
        "import_rows_per_s": report["rows_per_s"],  # the import's own time (no start-up)
        "wall_s": round(run["wall_s"], 1),
        "cpu_s": round(run["cpu_s"], 1),
        "peak_rss_mb": round(run["peak_rss_mb"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--before", help="Also measure the code of this git ref (the baseline).")
    parser.add_argument("--workdir", default=str(REPO / ".bench" / "import"))
    parser.add_argument("--json", action="store_true", help="Print the result as JSON only.")
    args = parser.parse_args()

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    parquet = corpus(workdir / f"corpus-{args.rows}", args.rows)
    codes: dict[str, Path | None] = {"after": None}
    if args.before:
        codes["before"] = extract(args.before, workdir / "before-src")
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in codes}
    load = [os.getloadavg()[0]]
    for round_ in range(args.rounds):
        for name, source in codes.items():
            runs[name].append(run_import(source, workdir / f"library-{name}", parquet))
            load.append(os.getloadavg()[0])
            print(
                f"[{time.strftime('%H:%M:%S')}] round {round_ + 1} {name}: {runs[name][-1]}", file=sys.stderr
            )
    result: dict[str, Any] = {"machine": machine(), "rows": args.rows, "before_ref": args.before}
    for name, done in runs.items():
        result[name] = {
            key: statistics.median(r[key] for r in done)
            for key in ("rows_per_s", "rows_per_cpu_s", "import_rows_per_s", "wall_s", "cpu_s", "peak_rss_mb")
        } | {"runs": done}
    if args.before:
        pairs = list(zip(runs["after"], runs["before"], strict=True))
        result["after_over_before"] = {
            "wall": [round(a["rows_per_s"] / b["rows_per_s"], 2) for a, b in pairs],
            "cpu": [round(a["rows_per_cpu_s"] / b["rows_per_cpu_s"], 2) for a, b in pairs],
        }
    result["load_average_1min"] = [round(x, 2) for x in load]
    (workdir / "result.json").write_text(json.dumps(result, indent=2))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{result['machine']['cpu']}, {result['machine']['cores']} cores; {args.rows} rows; load {load}")
    for name in codes:
        r = result[name]
        print(
            f"{name:>6}: {r['rows_per_s']:>8} rows/s  {r['rows_per_cpu_s']:>8} rows/CPU s  "
            f"(import alone {r['import_rows_per_s']} rows/s)  peak {r['peak_rss_mb']} MB"
        )
    if args.before:
        print(f"after / before, per round: {result['after_over_before']}")


if __name__ == "__main__":
    main()
