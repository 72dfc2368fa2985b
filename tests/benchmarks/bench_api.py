"""HTTP search API throughput and latency against the same searches called in-process.

Builds (or reuses, under ``.bench/api/``) a synthetic 10,000-asset library written straight
through :class:`search.store.Store`: assets with DAM metadata and tags, random 64-d vectors of
the tiny model (``assetlens-tiny@random``; videos get several keyframe vectors), so nothing is
decoded. Then starts ``assetlens serve`` on loopback with the tiny model, creates a read key
with ``assetlens keys create``, and drives it from a separate load-generator process (asyncio +
httpx, ``--clients`` concurrent connections, bounded by ``--requests`` and ``--seconds``) with:

- identical: the same text query every time (query-embedding cache hit);
- unique: a different text every time (one text encode per request);
- filtered: rotating texts with rotating filters of different selectivity.

The baseline is the same request bodies run through ``SearchEngine.search`` in this process,
one at a time (no HTTP, no JSON, no auth). Client and server share the machine: on a small one
the load generator takes CPU from the server; the ``server cpu`` and ``client cpu`` columns show
the cores each used (server: all its processes, from /proc) during the timed window.

First, in-process, the first filtered search of each of ``--sessions`` pooled sessions: each with
its own filter column cache (the baseline) against one cache shared by all (what the API does).

The library, the server's start and stop, the /proc CPU sampling and the per-session test live in
``api_support.py``; this script holds the workloads, the load generator and the comparison.

Run on demand (not collected by pytest)::

    python tests/benchmarks/bench_api.py [--assets 10000] [--clients 16] [--requests 2000]
        [--seconds 20] [--workers 1] [--sessions 8] [--sessions-only] [--workdir .bench/api] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from api_support import (
    HOST,
    SEED,
    _process_cpu,
    build_library,
    create_key,
    free_port,
    run_sessions,
    start_server,
    stop_server,
)

ROOT = Path(__file__).resolve().parents[2]

# fmt: off
WORDS = [
    "red", "blue", "green", "sneaker", "boot", "leather", "summer", "winter", "city", "beach",
    "studio", "portrait", "product", "model", "running", "jacket", "bag", "watch", "street", "night",
    "morning", "coffee", "team", "office", "laptop", "travel", "mountain",
]
# fmt: on
FILTERS = [
    "kind:image",  # most of the library
    "region:DE",  # a fifth
    "kind:video created>=2024-01-01",
    "tag:shoe status:approved",
    "campaign:campaign-07 region:(DE OR AT)",  # about 0.8 %
]


# --- the workloads -------------------------------------------------------------------------


def workloads(count: int) -> dict[str, list[dict[str, Any]]]:
    """Request bodies of ``POST /v1/search`` per scenario (``count`` each, deterministic)."""
    rng = np.random.default_rng(SEED + 1)

    def text(i: int) -> str:
        return " ".join(WORDS[int(j)] for j in rng.choice(len(WORDS), size=3, replace=False)) + f" {i}"

    fixed = [f"{WORDS[i]} {WORDS[i + 1]}" for i in range(0, 16, 2)]
    return {
        "identical": [{"text": "red leather sneaker on white", "limit": 20}] * count,
        "unique": [{"text": text(i), "limit": 20} for i in range(count)],
        "filtered": [
            {"text": fixed[i % len(fixed)], "filter": FILTERS[i % len(FILTERS)], "limit": 20}
            for i in range(count)
        ],
    }


def warm_up(bodies: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """Requests like the scenario's first ones but with other texts, so they warm no timed text."""
    return [{**body, "text": f"warm up {i} {body['text']}"} for i, body in enumerate(bodies[:count])]


def _percentiles(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50_ms": round(statistics.median(ordered) * 1000, 2), "p99_ms": round(p99 * 1000, 2)}


# --- over HTTP (the load generator runs in its own process) --------------------------------


def _load_worker(spec_file: Path) -> None:
    """The load generator's process: runs one scenario, prints one JSON document."""
    spec = json.loads(spec_file.read_text())
    print(json.dumps(asyncio.run(_drive(**spec))))


async def _drive(
    url: str, key: str, bodies: list[dict[str, Any]], clients: int, seconds: float, server_pid: int
) -> dict[str, Any]:
    import httpx

    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    queue = iter(bodies)
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=120, trust_env=False
    ) as http:
        # Warm up: connections, the server's caches and calibrator (not timed; not taken from the queue).
        await asyncio.gather(*(http.post("/v1/search", json=body) for body in warm_up(bodies, clients)))
        deadline = time.perf_counter() + seconds
        cpu_before, client_before = _process_cpu(server_pid), time.process_time()
        started = time.perf_counter()

        async def client() -> None:
            for body in queue:
                if time.perf_counter() > deadline:
                    return
                t0 = time.perf_counter()
                response = await http.post("/v1/search", json=body)
                latencies.append(time.perf_counter() - t0)
                if response.status_code != 200:
                    errors[str(response.status_code)] = errors.get(str(response.status_code), 0) + 1

        await asyncio.gather(*(client() for _ in range(clients)))
        wall = time.perf_counter() - started
        cpu = _process_cpu(server_pid) - cpu_before
        client_cpu = time.process_time() - client_before
    return {
        "requests": len(latencies),
        "seconds": round(wall, 2),
        "errors": errors,
        "requests_per_s": round(len(latencies) / wall, 1),
        **_percentiles(latencies),
        "server_cpu": round(cpu / wall, 2),
        "client_cpu": round(client_cpu / wall, 2),
    }


def run_http(
    url: str,
    key: str,
    bodies: list[dict[str, Any]],
    clients: int,
    seconds: float,
    server_pid: int,
    work: Path,
) -> dict[str, Any]:
    """One scenario through the server, driven from a separate process (this script, ``--load-worker``)."""
    spec = work / "load.json"
    spec.write_text(json.dumps({"url": url, "key": key, "bodies": bodies, "clients": clients,
                                "seconds": seconds, "server_pid": server_pid}))  # fmt: skip
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--load-worker", str(spec)],
        capture_output=True, text=True, check=True, timeout=seconds + 600,
    )  # fmt: skip
    return dict(json.loads(out.stdout))


# --- in-process baseline -------------------------------------------------------------------


def _query(body: dict[str, Any]) -> Any:
    """A request body as a :class:`search.query.Query`."""
    from assetlens.search.filters import parse_filter
    from assetlens.search.query_types import Query, parse_text

    positives, negatives = parse_text(body["text"])
    flt = parse_filter(body["filter"]) if body.get("filter") else None
    return Query(text=positives, negative=negatives, filter=flt, limit=body["limit"])


def run_inprocess(engine: Any, bodies: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """The same searches through ``SearchEngine.search``, one at a time."""
    for body in warm_up(bodies, 8):
        engine.search(_query(body))
    latencies: list[float] = []
    started = time.perf_counter()
    for body in bodies:
        if time.perf_counter() - started > seconds:
            break
        t0 = time.perf_counter()
        page = engine.search(_query(body))
        [r.as_dict() for r in page.results]  # what the API serialises
        latencies.append(time.perf_counter() - t0)
    wall = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "seconds": round(wall, 2),
        "requests_per_s": round(len(latencies) / wall, 1),
        **_percentiles(latencies),
    }


# --- main ----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=int, default=10_000, help="assets in the synthetic library")
    parser.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients")
    parser.add_argument("--requests", type=int, default=2000, help="most requests per scenario")
    parser.add_argument("--seconds", type=float, default=20.0, help="most seconds per scenario")
    parser.add_argument("--workers", type=int, default=1, help="assetlens serve --workers")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".bench" / "api")
    parser.add_argument("--sessions", type=int, default=8, help="pooled sessions (first-search test)")
    parser.add_argument("--sessions-only", action="store_true", help="only the first-search test")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--load-worker", type=Path, help=argparse.SUPPRESS)  # internal: the load process
    args = parser.parse_args()
    if args.load_worker:
        _load_worker(args.load_worker)
        return
    os.environ["HF_HUB_OFFLINE"] = "1"
    sys.path.insert(0, str(ROOT))

    data_dir = args.workdir / "library"
    library = build_library(data_dir, args.assets)
    bodies = workloads(args.requests)

    from assetlens.models.settings import ModelSettings
    from assetlens.search.library import LibraryCore
    from assetlens.search.settings import SearchSettings

    rows: dict[str, dict[str, Any]] = {}
    lib = LibraryCore(SearchSettings(data_dir=data_dir), ModelSettings(clip_model="tiny"))
    try:
        lib.index.sync(save=False)
        sessions = run_sessions(lib, bodies["filtered"], args.sessions, _query)
        if args.sessions_only:
            print(json.dumps({"library": library, "first_search_per_session": sessions}, indent=2))
            return
        for name, scenario in bodies.items():
            rows[f"in-process {name}"] = run_inprocess(lib.engine, scenario, args.seconds)
    finally:
        lib.close()

    key = create_key(data_dir)
    port = free_port()
    server = start_server(data_dir, port, args.workdir / "server.log", args.workers)
    try:
        for name, scenario in bodies.items():
            rows[f"http {name}"] = run_http(
                f"http://{HOST}:{port}", key, scenario, args.clients, args.seconds, server.pid, args.workdir
            )
    finally:
        stop_server(server)

    doc = {
        "library": library,
        "clients": args.clients,
        "server_workers": args.workers,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "results": rows,
        "first_search_per_session": sessions,
    }
    if args.json:
        print(json.dumps(doc, indent=2))
        return
    print(
        f"library: {args.assets} assets ({'reused' if library['reused'] else 'built'}), "
        f"{args.clients} HTTP clients, {os.cpu_count()} CPUs"
    )
    header = ("path", "requests", "req/s", "p50 ms", "p99 ms", "errors", "server cpu", "client cpu")
    print(f"{header[0]:<22}" + "".join(f"{h:>11}" for h in header[1:]))
    for name, row in rows.items():
        errors = sum(row.get("errors", {}).values()) if "errors" in row else ""
        cells = (row["requests"], row["requests_per_s"], row["p50_ms"], row["p99_ms"], errors)
        print(
            f"{name:<22}"
            + "".join(f"{c!s:>11}" for c in (*cells, row.get("server_cpu", ""), row.get("client_cpu", "")))
        )


if __name__ == "__main__":
    main()
