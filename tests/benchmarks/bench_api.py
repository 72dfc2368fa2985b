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
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
MODEL_ID = "assetlens-tiny@random"
DIM = 64
SEED = 4321
LIBRARY_VERSION = 1  # bump when the generation below changes
HOST = "127.0.0.1"  # loopback only

# fmt: off
TAGS = [
    "shoe", "sneaker", "boot", "sandal", "bag", "backpack", "watch", "jacket", "shirt", "dress", "hat",
    "sunglasses", "bottle", "cup", "chair", "sofa", "table", "lamp", "car", "bicycle", "motorcycle",
    "dog", "cat", "bird", "tree", "flower", "beach", "mountain", "city", "street", "office", "kitchen",
    "portrait", "lifestyle", "flat-lay", "product-shot", "logo", "screenshot", "illustration",
    "document", "chart", "red", "blue", "green", "white", "black", "yellow", "outdoor", "indoor",
    "studio", "night", "summer", "winter",
]
CAMPAIGNS = [f"campaign-{i:02d}" for i in range(20)]
REGIONS = ["DE", "AT", "FR", "US", "JP"]
STATUSES = ["approved", "approved", "approved", "draft", "rejected"]
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


# --- the library ---------------------------------------------------------------------------


def build_library(data_dir: Path, count: int) -> dict[str, Any]:
    """Write ``count`` synthetic assets (reused when the manifest matches); returns the manifest."""
    from search.index import VectorIndex
    from search.store import Store, Tag

    manifest = data_dir / "bench.json"
    want = {"assets": count, "seed": SEED, "version": LIBRARY_VERSION, "model": MODEL_ID}
    if (
        manifest.exists()
        and json.loads(manifest.read_text()) == want
        and (data_dir / "assetlens.db").exists()
    ):
        return want | {"reused": True}
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    started = time.perf_counter()
    rng = np.random.default_rng(SEED)
    store = Store(data_dir / "assetlens.db")
    try:
        for start in range(0, count, 1000):
            with store.transaction():
                for i in range(start, min(start + 1000, count)):
                    _write_asset(store, rng, i, Tag)
        VectorIndex(store, data_dir).sync()
    finally:
        store.close()
    manifest.write_text(json.dumps(want))
    return want | {"reused": False, "build_s": round(time.perf_counter() - started, 1)}


def _write_asset(store: Any, rng: np.random.Generator, i: int, tag_type: Any) -> None:
    roll = rng.random()
    kind = "image" if roll < 0.8 else ("video" if roll < 0.95 else "audio")
    ext, mime = {
        "image": ("jpg", "image/jpeg"),
        "video": ("mp4", "video/mp4"),
        "audio": ("mp3", "audio/mpeg"),
    }[kind]
    year, month, day = 2020 + int(rng.integers(0, 6)), int(rng.integers(1, 13)), int(rng.integers(1, 29))
    duration = float(rng.uniform(5, 120)) if kind != "image" else None
    meta = {
        "campaign": CAMPAIGNS[int(rng.integers(0, len(CAMPAIGNS)))],
        "region": REGIONS[int(rng.integers(0, len(REGIONS)))],
        "status": STATUSES[int(rng.integers(0, len(STATUSES)))],
        "sku": f"SKU-{int(rng.integers(10000, 99999))}",
    }
    asset_id = store.upsert_asset(
        {
            "uri": f"/bench/{kind}/{CAMPAIGNS[i % len(CAMPAIGNS)]}/asset{i:05d}.{ext}",
            "content_hash": f"{i:016x}",
            "kind": kind,
            "mime": mime,
            "size": int(rng.integers(50_000, 9_000_000)),
            "mtime": 1.7e9 + i,
            "width": 1920 if kind != "audio" else None,
            "height": 1080 if kind != "audio" else None,
            "duration": duration,
            "created": f"{year}-{month:02d}-{day:02d}T12:00:00",
            "status": "ok",
            "meta": meta,
            "poster_t": 0.0 if kind == "video" else None,
        }
    )
    frames = {"image": 1, "video": int(rng.integers(2, 9)), "audio": 0}[kind]
    vectors = rng.standard_normal((frames, DIM)).astype(np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    times = [None] if kind == "image" else [round(float(t), 2) for t in np.linspace(0, duration or 0, frames)]
    store.replace_vectors(asset_id, MODEL_ID, vectors, times)
    chosen = rng.choice(len(TAGS), size=5 if frames else 0, replace=False)
    tags = [tag_type(TAGS[j], round(float(rng.uniform(0.2, 0.35)), 4), "clip", MODEL_ID) for j in chosen]
    store.replace_tags(asset_id, "clip", tags)


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


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process and its child processes (uvicorn workers), from /proc."""
    total = 0.0
    for each in (pid, *_children(pid)):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            continue
    return total


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


# --- in-process baseline -------------------------------------------------------------------


def _query(body: dict[str, Any]) -> Any:
    """A request body as a :class:`search.query.Query`."""
    from search.filters import parse_filter
    from search.query import Query, parse_text

    positives, negatives = parse_text(body["text"])
    flt = parse_filter(body["filter"]) if body.get("filter") else None
    return Query(text=positives, negative=negatives, filter=flt, limit=body["limit"])


def run_inprocess(engine: Any, bodies: list[dict[str, Any]], seconds: float) -> dict[str, Any]:
    """The same searches through ``SearchEngine.search``, one at a time."""
    query = _query
    for body in warm_up(bodies, 8):
        engine.search(query(body))
    latencies: list[float] = []
    started = time.perf_counter()
    for body in bodies:
        if time.perf_counter() - started > seconds:
            break
        t0 = time.perf_counter()
        page = engine.search(query(body))
        [r.as_dict() for r in page.results]  # what the API serialises
        latencies.append(time.perf_counter() - t0)
    wall = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "seconds": round(wall, 2),
        "requests_per_s": round(len(latencies) / wall, 1),
        **_percentiles(latencies),
    }


def run_sessions(lib: Any, bodies: list[dict[str, Any]], sessions: int) -> dict[str, Any]:
    """The first filtered search of each of ``sessions`` pooled sessions, as the API runs them.

    Baseline: each session with its own filter column cache (the API before the cache was
    shared); against: one cache shared by every session (the API now). Query texts are encoded
    beforehand, so the timings are the filter work.
    """
    from search.columns import ColumnCache
    from search.query import SearchEngine
    from search.store import Store

    lib.encoder.encode_texts([b["text"] for b in bodies[:sessions]])
    out: dict[str, Any] = {}
    for label in ("own cache per session (baseline)", "one shared cache"):
        shared = ColumnCache(Store(lib.settings.db_path)) if label == "one shared cache" else None
        stores = [Store(lib.settings.db_path) for _ in range(sessions)]
        firsts = []
        try:
            engines = [SearchEngine(s, lib.index, lib.encoder, columns=shared) for s in stores]
            for engine, body in zip(engines, bodies, strict=False):
                t0 = time.perf_counter()
                engine.search(_query(body))
                firsts.append(time.perf_counter() - t0)
            caches = {id(e.vectors.planner.columns): e.vectors.planner.columns for e in engines}
            out[label] = {
                "first_search_ms": [round(t * 1000, 1) for t in firsts],
                "sum_first_s": round(sum(firsts), 2),
                "cache_mb": round(sum(c.memory_bytes() for c in caches.values()) / 1e6, 1),
            }
        finally:
            for store in stores:
                store.close()
            if shared is not None:
                shared.store.close()
    return out


# --- the server ----------------------------------------------------------------------------


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETLENS_")}
    return env | {
        "ASSETLENS_CLIP_MODEL": "tiny",
        "ASSETLENS_DATA_DIR": str(data_dir),
        "HF_HUB_OFFLINE": "1",
        "NO_PROXY": "127.0.0.1,localhost",
    }


def _cli() -> list[str]:
    exe = Path(sys.executable).with_name("assetlens")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "enrich"]


def create_key(data_dir: Path) -> str:
    """A read key made by ``assetlens keys create``."""
    out = subprocess.run(
        [*_cli(), "--data-dir", str(data_dir), "keys", "create", "--scope", "read", "--json"],
        env=_env(data_dir),
        capture_output=True,
        text=True,
        check=True,
    )
    return str(json.loads(out.stdout)["key"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def start_server(data_dir: Path, port: int, log: Path, workers: int = 1) -> subprocess.Popen[bytes]:
    """``assetlens serve`` on loopback; returns once it answers."""
    import httpx

    handle = log.open("wb")
    proc = subprocess.Popen(
        [
            *_cli(),
            "--data-dir",
            str(data_dir),
            "serve",
            "--host",
            HOST,
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
        ],
        env=_env(data_dir),
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"assetlens serve exited with {proc.returncode}; see {log}")
        try:
            if httpx.get(f"http://{HOST}:{port}/readyz", timeout=2, trust_env=False).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"assetlens serve did not answer within 120 s; see {log}")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


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

    from models.settings import ModelSettings
    from search.library import Library
    from search.settings import SearchSettings

    rows: dict[str, dict[str, Any]] = {}
    lib = Library(SearchSettings(data_dir=data_dir), ModelSettings(clip_model="tiny"))
    try:
        lib.index.sync(save=False)
        sessions = run_sessions(lib, bodies["filtered"], args.sessions)
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
