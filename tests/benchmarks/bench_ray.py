"""Issue 11: the Ray executor against the local one, in one run, on the same corpus.

Each run is a real ``assetlens ingest CORPUS --json`` subprocess into a fresh data dir, with a
warm machine cache (the ONNX export and label embeddings made once, beforehand):

- ``local``: the local executor (the baseline);
- ``ray, running cluster``: ``--engine ray --ray-address`` to a head started with ``ray start``
  before the rounds (what a user with a cluster does);
- ``ray, new local cluster``: ``--engine ray`` without an address (Ray starts and stops with
  the run);
- the scaling runs: the running cluster with 1 and 2 CLIP actors (``ASSETLENS_RAY_ACTORS``), each
  with its share of the cores (``ASSETLENS_CLIP_THREADS``).

Rounds alternate the runs, so that load from elsewhere on the machine falls on all of them;
``x_local`` compares medians, ``x_local_paired`` is the median of the per-round ratios. The
driver's writer alone (``writer``) is measured too: the ceiling of one library whatever the
cluster. Run::

    .venv/bin/python tests/benchmarks/bench_ray.py --images 500 --rounds 3 --json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ingest_support import machine, make_corpus

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ingest(corpus: Path, data: Path, env: dict[str, str], *extra: str) -> dict[str, Any]:
    """One ``assetlens ingest`` subprocess: wall time, images/s, its report."""
    shutil.rmtree(data, ignore_errors=True)
    command = [sys.executable, "-m", "assetlens.enrich", "ingest", str(corpus), "--json", *extra]
    started = time.perf_counter()
    result = subprocess.run(
        command, env={**env, "ASSETLENS_DATA_DIR": str(data)}, capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(extra) or 'local'} failed:\n{result.stderr[-3000:]}")
    report = json.loads(result.stdout)
    return {
        "wall_s": round(wall, 2),
        "images_per_s": round(report["added"] / wall, 1),
        "added": report["added"],
    }


def _start_head(temp: Path) -> tuple[str, subprocess.Popen[bytes]]:
    port = _free_port()
    head = subprocess.Popen(
        [str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", f"--port={port}",
         f"--num-cpus={os.cpu_count() or 2}", "--include-dashboard=false", f"--temp-dir={temp}",
         "--disable-usage-stats"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    for _ in range(240):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            time.sleep(2)  # the raylet registers after the GCS answers
            return f"127.0.0.1:{port}", head
        except OSError:
            time.sleep(0.5)
    raise SystemExit("the Ray head did not start")


def bench_writer(files: int, dim: int = 512, batch: int = 32, per_row: bool = False) -> dict[str, float]:
    """The driver's writer alone (no model, no file): the ceiling of any cluster for one library.

    Synthetic stage results (a unit vector and 8 tags per image) are written as ingest writes
    them, one transaction per batch, into a fresh library. ``per_row``: the baseline, with the
    tags' full-text words and change log kept up to date per row, as before words were deferred
    to the end of each transaction. CPU seconds are the steadier figure on a shared machine.
    """
    import numpy as np

    from assetlens.enrich.scan import Candidate
    from assetlens.enrich.work import FileWork
    from assetlens.enrich.writer import IngestReport, Writer
    from assetlens.search.store import Store, Tag

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "assetlens.db")
        store.ensure_model("bench")
        store._defer_words = not per_row
        report = IngestReport(store.start_job("ingest", {}))
        writer = Writer(store, report, "bench", files)
        works = []
        for i in range(files):
            vector = rng.standard_normal((1, dim)).astype(np.float32)
            vector /= np.linalg.norm(vector)
            tags = tuple(Tag(f"tag{(i + k) % 700}", 0.3, "clip", "bench", None) for k in range(8))
            candidate = Candidate(Path(tmp) / f"photo {i}.jpg", "image", "image/jpeg", 1_000_000, 1.7e9)
            works.append(
                FileWork(
                    candidate,
                    kind="image",
                    content_hash=f"{i:032x}",
                    vectors=vector,
                    times=(None,),
                    tags=tags,
                )
            )
        started, cpu = time.perf_counter(), time.process_time()
        for start in range(0, files, batch):
            writer.write(works[start : start + batch])
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        store.close()
    return {
        "files": files,
        "seconds": round(seconds, 2),
        "files_per_s": round(files / seconds),
        "files_per_cpu_s": round(files / cpu),
    }


def run_writer(files: int) -> dict[str, Any]:
    """The writer alone, with per-row word upkeep (the baseline) and with words deferred."""
    return {
        "per row (baseline)": bench_writer(files, per_row=True),
        "deferred to the commit": bench_writer(files),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = ROOT / ".bench" / "ray"
    corpus = make_corpus(work / f"corpus-{args.images}", args.images, pngs=0, videos=0)["jpeg"][0].parent
    cache = Path(tempfile.mkdtemp(prefix="al-ray-cache-"))
    env = {**os.environ, "ASSETLENS_CLIP_MODEL": args.model, "ASSETLENS_CACHE_DIR": str(cache)}
    one = work / "one"
    one.mkdir(parents=True, exist_ok=True)
    shutil.copy(sorted(corpus.glob("*.jpg"))[0], one / "warm.jpg")
    _ingest(one, work / "data-warm", env)  # the machine cache: ONNX export, label embeddings
    temp = Path("/tmp") / f"al-bench-ray-{os.getpid()}"
    address, head = _start_head(temp)
    cores = os.cpu_count() or 2
    runs: dict[str, tuple[dict[str, str], list[str]]] = {
        "local": (env, []),
        "ray, running cluster": (env, ["--engine", "ray", "--ray-address", address]),
        "ray, new local cluster": (env, ["--engine", "ray"]),
        "ray, 1 CLIP actor": (
            {**env, "ASSETLENS_RAY_ACTORS": "1", "ASSETLENS_CLIP_THREADS": str(cores)},
            ["--engine", "ray", "--ray-address", address],
        ),
        "ray, 2 CLIP actors": (
            {**env, "ASSETLENS_RAY_ACTORS": "2", "ASSETLENS_CLIP_THREADS": str(max(1, cores // 2))},
            ["--engine", "ray", "--ray-address", address],
        ),
    }
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in runs}
    try:
        for round_ in range(args.rounds):
            for name, (run_env, extra) in runs.items():
                results[name].append(_ingest(corpus, work / "data", run_env, *extra))
                print(f"round {round_ + 1} {name}: {results[name][-1]}", file=sys.stderr)
    finally:
        head.terminate()
        head.wait(60)
        shutil.rmtree(temp, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)
    writer = run_writer(args.writer_files)
    medians = {name: statistics.median(r["wall_s"] for r in rows) for name, rows in results.items()}
    local = medians["local"]
    return {
        "machine": machine(),
        "model": args.model,
        "images": args.images,
        "rounds": args.rounds,
        "command": "python -m assetlens.enrich ingest CORPUS --json [--engine ray [--ray-address ADDR]]",
        "writer": writer,
        "runs": {
            name: {
                "median_wall_s": medians[name],
                "images_per_s": round(args.images / medians[name], 1),
                "x_local": round(local / medians[name], 2),
                # the same ratio per round (each run beside its own local run), then the median
                "x_local_paired": round(
                    statistics.median(
                        a["wall_s"] / b["wall_s"]
                        for a, b in zip(results["local"], results[name], strict=True)
                    ),
                    2,
                ),
                "walls_s": [r["wall_s"] for r in results[name]],
            }
            for name in runs
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", default="ViT-B-32@random")
    parser.add_argument("--writer-files", type=int, default=20_000, help="Files for the writer-alone run.")
    parser.add_argument("--json", action="store_true", help="Print the results as JSON.")
    parser.add_argument("--writer-only", action="store_true", help="Run only the writer-alone runs.")
    args = parser.parse_args()
    if args.writer_only:
        print(json.dumps({"machine": machine(), "writer": run_writer(args.writer_files)}, indent=2))
        return
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.images} JPEGs, {args.model}, median of {args.rounds} rounds, {result['machine']}")
    for name, row in result["writer"].items():
        print(f"  writer alone, {name}: {row['files_per_s']} files/s, {row['files_per_cpu_s']} per CPU s")
    for name, row in result["runs"].items():
        rate = f"{row['images_per_s']:>7.1f} img/s"
        ratios = f"{row['x_local']:.2f}x local ({row['x_local_paired']:.2f}x paired by round)"
        print(f"  {name:<24} {row['median_wall_s']:>7.1f} s {rate}  {ratios}")


if __name__ == "__main__":
    main()
