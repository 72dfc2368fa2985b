"""Support for ``bench_api.py``: the synthetic library, the server, CPU sampling, pooled sessions.

- :func:`build_library`: a synthetic library written straight through :class:`search.store.Store`
  (assets with DAM metadata and tags, random 64-d vectors of the tiny model ``MODEL_ID``; videos
  get several keyframe vectors), reused while its ``bench.json`` manifest matches.
- :func:`create_key`, :func:`free_port`, :func:`start_server`, :func:`stop_server`: ``assetlens
  keys create`` and ``assetlens serve`` on loopback with the tiny model, in subprocesses.
- :func:`_process_cpu`: the CPU seconds of a process and its children (uvicorn workers), from /proc.
- :func:`run_sessions`: the first filtered search of each of several pooled sessions, in-process,
  with a filter column cache per session against one shared by all.

Imports nothing heavy at module level (no torch, open_clip or av): the load generator's process
imports ``bench_api`` and with it this module, and must stay light.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

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
# fmt: on
CAMPAIGNS = [f"campaign-{i:02d}" for i in range(20)]
REGIONS = ["DE", "AT", "FR", "US", "JP"]
STATUSES = ["approved", "approved", "approved", "draft", "rejected"]


# --- the library ---------------------------------------------------------------------------


def build_library(data_dir: Path, count: int) -> dict[str, Any]:
    """Write ``count`` synthetic assets (reused when the manifest matches); returns the manifest."""
    from assetlens.search.store import Store, Tag
    from assetlens.search.vectors.index import VectorIndex

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
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "assetlens.enrich"]


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


# --- CPU sampling (from /proc) -------------------------------------------------------------


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


# --- pooled sessions (in-process) ----------------------------------------------------------


def run_sessions(
    lib: Any, bodies: list[dict[str, Any]], sessions: int, to_query: Callable[[dict[str, Any]], Any]
) -> dict[str, Any]:
    """The first filtered search of each of ``sessions`` pooled sessions, as the API runs them.

    Baseline: each session with its own filter column cache (the API before the cache was
    shared); against: one cache shared by every session (the API now). Query texts are encoded
    beforehand, so the timings are the filter work. ``to_query`` turns a request body into a
    :class:`search.query.Query` (``bench_api._query``; its parsing is timed, as in the API).
    """
    from assetlens.search.filters.columns import ColumnCache
    from assetlens.search.query import SearchEngine
    from assetlens.search.store import Store

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
                engine.search(to_query(body))
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
