"""Ingest throughput: the AssetLens pipeline in every precision against a naive CLIP loop.

One run, one corpus (``ingest_corpus.py``: camera-size JPEGs, some PNGs, a few videos), one
network (``ViT-B-32@random`` by default: seeded random weights, so timing only). Measured:

- naive: ``Image.open().convert("RGB")``, open_clip's preprocess and fp32 ``encode_image`` on
  one image at a time (the baseline), over the JPEGs;
- decode-only: ``decode_image`` (draft mode) + ``prepare_image`` in one thread, no network;
- pipeline: ``Ingester.ingest`` of the JPEGs into a fresh library in each precision (hashing,
  decode threads, batched encode, tagging, SQLite writes, index sync), with resident memory
  sampled; the best mode again with other decode-thread counts and on the mixed corpus;
- CLI: ``assetlens ingest`` of the JPEGs in a subprocess (model load included, default precision);
- text: one query's embedding latency per precision (and fp32 without padding trimming).

With ``--device cuda`` the same runs use the GPU modes (fp32, bf16, fp16) and the GPU defaults
(batch 128, a decode thread per core); the naive loop runs fp32 on the GPU.

One-off costs (label embeddings, the ONNX export) are reported, not timed in the runs. With
``--memory-only``, ingests ``--images`` small JPEGs with the tiny model and reports resident
memory against files done (start, middle, end). Run on demand (pytest does not collect it)::

    python tests/benchmarks/bench_ingest.py [--images 500] [--device cuda] [--json]
    python tests/benchmarks/bench_ingest.py --memory-only --images 10000 [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from ingest_support import SIZES, RssSampler, machine, make_corpus, make_small_corpus, vm_hwm_kb
from PIL import Image

from assetlens.enrich.decode import decode_image
from assetlens.enrich.pipeline import Ingester, IngestOptions, default_batch_size, default_workers
from assetlens.enrich.tagging import Tagger
from assetlens.models.clip import ClipEncoder, prepare_image
from assetlens.models.precision import cpu_supports_bf16, onnx_available
from assetlens.models.registry import resolve_model
from assetlens.models.settings import ModelSettings
from assetlens.models.vocab import load_vocabulary
from assetlens.search.library import LibraryCore
from assetlens.search.settings import SearchSettings
from assetlens.search.store import Store

MODES = {"cpu": ("fp32", "bf16", "int8", "onnx-int8"), "cuda": ("fp32", "bf16", "fp16")}
QUERIES = [
    f"{a} {b}"
    for a in (
        "a red sneaker",
        "a woman in a blue dress",
        "a bottle of olive oil",
        "a city skyline",
        "a laptop on a desk",
    )
    for b in (
        "on white",
        "outdoors at sunset",
        "in a studio",
        "close-up",
        "flat lay",
        "with a logo",
        "in the rain",
        "product shot",
    )
]
Timing = tuple[float, float]  # (wall seconds, CPU seconds of this process, all threads)


def _clock() -> Timing:
    return time.perf_counter(), time.process_time()


def _since(start: Timing) -> Timing:
    wall, cpu = _clock()
    return wall - start[0], cpu - start[1]


def _row(n: int, timing: Timing) -> dict[str, float]:
    wall, cpu = timing
    # cpu_cores well below the threads in use means other processes took the CPU meanwhile;
    # images per CPU-second is what the machine would do per core, were it ours alone.
    return {
        "seconds": round(wall, 2),
        "images_per_s": round(n / wall, 2),
        "cpu_cores": round(cpu / wall, 2),
        "images_per_cpu_s": round(n / max(cpu, 1e-9), 2),
    }


def encoder_for(model: str, mode: str, cache: Path, device: str) -> ClipEncoder:
    settings = ModelSettings(clip_model=model, clip_precision=mode, device=device, cache_dir=cache)  # type: ignore[arg-type]
    return ClipEncoder(resolve_model(model), settings)


def bench_naive(encoder: ClipEncoder, files: list[Path]) -> Timing:
    """Time of the baseline loop: full decode, open_clip preprocess, batch-of-one fp32 encode."""
    model = encoder.torch_model
    cfg = open_clip.get_model_preprocess_cfg(model)
    args = cfg["size"], False, cfg["mean"], cfg["std"], cfg.get("resize_mode"), cfg.get("interpolation")
    preprocess = open_clip.image_transform(*args)  # CLIP's own eval transform

    def once(path: Path) -> None:  # .cpu(): the vector back on the host, as the pipeline's are
        model.encode_image(preprocess(Image.open(path).convert("RGB"))[None].to(encoder.device)).cpu()

    with torch.inference_mode():
        for path in files[:3]:  # warm-up: the first batch-of-one calls are several times slower
            once(path)
        start = _clock()
        for path in files:
            once(path)
    return _since(start)


def bench_decode(files: list[Path], size: int) -> Timing:
    """Time to decode (draft mode) and prepare every file in one thread."""
    start = _clock()
    for path in files:
        prepare_image(decode_image(path, min_side=size).image, size)
    return _since(start)


def bench_pipeline(encoder: ClipEncoder, root: Path, workdir: Path, workers: int) -> dict[str, Any]:
    """Ingest ``root`` into a fresh library; timings, memory and the ingest report."""
    data_dir = Path(tempfile.mkdtemp(prefix="library-", dir=workdir))
    lib = LibraryCore(SearchSettings(data_dir=data_dir), ModelSettings(clip_model=encoder.spec.name))
    try:
        tagger = Tagger(encoder, load_vocabulary())
        tagger.label_embeddings()  # in the work dir's machine cache: computed on the first run only
        options = IngestOptions(workers=workers)
        gc.collect()
        sampler = RssSampler()
        sampler.start()
        start = _clock()
        report = Ingester(lib.store, encoder, tagger, lib.index).ingest([root], options)
        timing = _since(start)
        memory = [mb for _, mb, _ in sampler.stop()]
        frames = lib.store.count_vectors()
        done = report.added + report.updated
        return {
            **_row(done, timing),
            "files": done,
            "frames": frames,
            "frames_per_s": round(frames / timing[0], 2),
            "workers": workers,
            "batch_size": options.batch_size or default_batch_size(encoder.device),
            "rss_start_mb": memory[0],
            "rss_peak_mb": max(memory),
            "failed": report.failed,
            "load_avg_1min": round(os.getloadavg()[0], 2),
        }
    finally:
        lib.close()
        shutil.rmtree(data_dir, ignore_errors=True)


def bench_cli(model: str, root: Path, workdir: Path, cache: Path, device: str) -> dict[str, Any]:
    """``assetlens ingest ROOT --json`` in a subprocess: process start and model load included.

    A new library on a used machine: the machine cache holds the one-off label embeddings.
    """
    data_dir = Path(tempfile.mkdtemp(prefix="cli-", dir=workdir))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSETLENS_")}
    env |= {
        "ASSETLENS_CLIP_MODEL": model,
        "ASSETLENS_CACHE_DIR": str(cache),
        "ASSETLENS_DATA_DIR": str(data_dir),
        "ASSETLENS_DEVICE": device,
    }
    # What the `assetlens` script runs, also where the package is not installed (a GPU host).
    command = [sys.executable, "-m", "assetlens.enrich", "ingest", str(root), "--json"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(command, env=env, stdout=out, stderr=err, text=True)
        peak_kb = 0
        while child.poll() is None:  # VmHWM: the child's own peak (ru_maxrss would count the fork)
            peak_kb = max(peak_kb, vm_hwm_kb(child.pid))
            time.sleep(0.2)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    shutil.rmtree(data_dir, ignore_errors=True)
    if child.returncode != 0:
        return {"error": stderr.strip()[-500:], "returncode": child.returncode}
    report = json.loads(stdout)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        **_row(report["added"], (wall, cpu)),
        "report": report,
        "command": "assetlens ingest ROOT --json (as python -m assetlens.enrich)",
        "peak_rss_mb": round(peak_kb / 1024, 1),
    }


def bench_text(encoder: ClipEncoder, untrimmed: bool = False) -> dict[str, float]:
    """One query at a time (uncached): median and 90th-percentile latency in milliseconds."""

    def once(query: str) -> None:
        if untrimmed:  # open_clip's own encode_text: all 77 positions
            with torch.inference_mode():
                tokens = torch.from_numpy(encoder._tokens([query])).to(encoder.device)
                encoder.torch_model.encode_text(tokens).cpu()
        else:
            encoder.encode_texts([query], remember=False)

    for query in QUERIES[:3]:
        once(query)
    walls, cpus = [], []
    for query in QUERIES:
        wall, cpu = _clock()
        once(query)
        walls.append((time.perf_counter() - wall) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    return {
        "median_ms": round(statistics.median(walls), 2),
        "p90_ms": round(np.percentile(walls, 90), 2),
        "median_cpu_ms": round(statistics.median(cpus), 2),
        "queries": len(QUERIES),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(args.workdir)
    cache = workdir / "model-cache"
    start = time.perf_counter()
    corpus = make_corpus(workdir / f"corpus-v2-{args.images}", args.images)
    corpus_s = time.perf_counter() - start
    jpegs, jpeg_root = corpus["jpeg"], corpus["jpeg"][0].parent
    n = len(jpegs)
    modes = [
        m
        for m in MODES[args.device]
        if (m != "bf16" or args.device == "cuda" or cpu_supports_bf16())
        and (m != "onnx-int8" or onnx_available())
    ]
    result: dict[str, Any] = {
        "benchmark": "ingest",
        "model": args.model,
        "images": n,
        "machine": machine(),
        "load_average_1min": {"start": round(os.getloadavg()[0], 2)},
        "pipeline": {},
        "text": {},
        "one_off": {"corpus_generated_or_checked_s": round(corpus_s, 1)},
    }
    for mode in modes:
        encoder = encoder_for(args.model, mode, cache, args.device)
        start = time.perf_counter()
        encoder.load()
        load_s = round(time.perf_counter() - start, 2)
        if encoder.onnx_meta is not None:
            meta = encoder.onnx_meta
            result["one_off"]["onnx_export_s"] = meta["export_s"]
            result["one_off"]["onnx_check"] = {k: meta[k] for k in ("image_min_cosine", "text_min_cosine")}
        encoder.encode_prepared(np.zeros((32, encoder.image_size, encoder.image_size, 3), np.uint8))
        if mode == "fp32":
            bench_decode(jpegs[:20], encoder.image_size)  # warm the page cache and Pillow
            result["decode_only"] = {**_row(n, bench_decode(jpegs, encoder.image_size)), "threads": 1}
            result["naive"] = _row(n, bench_naive(encoder, jpegs))
            result["text"]["fp32, untrimmed 77 tokens"] = bench_text(encoder, untrimmed=True)
            start = time.perf_counter()
            Tagger(encoder, load_vocabulary()).label_embeddings()
            result["one_off"]["label_embeddings_s"] = round(time.perf_counter() - start, 2)
        run_ = bench_pipeline(encoder, jpeg_root, workdir, default_workers(args.device))
        result["pipeline"][mode] = {**run_, "model_load_s": load_s, "precision": encoder.precision}
        result["text"][mode] = bench_text(encoder)
        if mode == modes[-1]:  # the best mode: decode threads, and the mixed corpus
            for workers in args.workers_sweep:
                if workers != default_workers(args.device):
                    result["pipeline"][f"{mode}, {workers} decode threads"] = bench_pipeline(
                        encoder, jpeg_root, workdir, workers
                    )
            result["mixed"] = bench_pipeline(encoder, jpeg_root.parent, workdir, default_workers(args.device))
        del encoder
        gc.collect()
    result["cli"] = bench_cli(args.model, jpeg_root, workdir, cache, args.device)
    best = max(result["pipeline"].values(), key=lambda r: r["images_per_s"])
    result["ratio_best_pipeline_over_naive"] = round(
        best["images_per_s"] / result["naive"]["images_per_s"], 2
    )
    result["ratios_over_naive"] = {
        k: round(v["images_per_s"] / result["naive"]["images_per_s"], 2)
        for k, v in result["pipeline"].items()
    }
    result["load_average_1min"]["end"] = round(os.getloadavg()[0], 2)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result["corpus"] = {
        "dir": str(jpeg_root.parent),
        "jpeg_sizes": [f"{w}x{h}" for w, h in SIZES],
        "jpegs": n,
        "pngs": len(corpus["png"]),
        "videos": len(corpus["video"]),
        "mean_jpeg_mb": round(sum(f.stat().st_size for f in jpegs) / n / 1e6, 2),
    }
    return result


def run_memory(args: argparse.Namespace) -> dict[str, Any]:
    """Ingest ``--images`` small JPEGs with the tiny model; resident memory against files done."""
    workdir = Path(args.workdir)
    start = time.perf_counter()
    files = make_small_corpus(workdir / f"small-{args.images}", args.images)
    corpus_s = round(time.perf_counter() - start, 1)
    data_dir = Path(tempfile.mkdtemp(prefix="memory-", dir=workdir))
    settings = ModelSettings(clip_model="tiny", cache_dir=workdir / "model-cache")
    lib = LibraryCore(SearchSettings(data_dir=data_dir), settings)
    try:
        tagger = Tagger(lib.encoder, load_vocabulary())
        tagger.label_embeddings()
        lib.store  # noqa: B018 - create the database, so the sampler can open it read-only
        local = threading.local()

        def done() -> int:
            if not hasattr(local, "store"):  # a connection of the sampler's own thread
                local.store = Store(lib.settings.db_path, readonly=True)
            return sum(local.store.count_assets().values())

        sampler = RssSampler(interval=1.0, progress=done)
        sampler.start()
        start_clock = _clock()
        report = Ingester(lib.store, lib.encoder, tagger, lib.index).ingest(
            [files[0].parents[1]], IngestOptions()
        )
        timing = _since(start_clock)
        samples = sampler.stop()
    finally:
        lib.close()
        shutil.rmtree(data_dir, ignore_errors=True)
    n = len(files)
    curve = {}
    for share in (0.0, 0.1, 0.25, 0.5, 0.75, 1.0):
        sample = next((s for s in samples if s[2] >= share * n), samples[-1])
        curve[f"{int(share * 100)}%"] = {"files_done": sample[2], "rss_mb": sample[1], "seconds": sample[0]}
    quarter, end = curve["25%"], curve["100%"]
    per_1000 = (end["rss_mb"] - quarter["rss_mb"]) / max(end["files_done"] - quarter["files_done"], 1) * 1000
    return {
        "benchmark": "ingest-memory",
        "model": "tiny",
        "images": n,
        "machine": machine(),
        "corpus_generated_or_checked_s": corpus_s,
        "run": _row(report.added, timing),
        "report": report.as_dict(),
        "rss_curve": curve,
        "rss_peak_mb": max(s[1] for s in samples),
        "growth_mb_per_1000_files_after_25pct": round(per_1000, 2),
        "samples": len(samples),
    }


def print_table(r: dict[str, Any]) -> None:
    m = r["machine"]
    print(
        f"AssetLens ingest benchmark: {r['images']} JPEGs, model {r['model']} (random weights: timing only)"
    )
    print(f"  machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, onnxruntime {m['onnxruntime']}")
    print(f"  corpus: {r['corpus']}")
    head = f"{'seconds':>9}{'img/s':>9}{'cores':>7}{'img/CPU-s':>11}{'x naive':>9}{'peak RSS':>10}"
    print(f"\n  {'run':<36}{head}")
    rows = [
        ("naive loop (baseline)", r["naive"], None),
        ("decode + prepare only (1 thread)", r["decode_only"], None),
    ]
    rows += [(f"pipeline {k}", v, r["ratios_over_naive"][k]) for k, v in r["pipeline"].items()]
    rows += [
        ("pipeline, mixed corpus (files)", r["mixed"], None),
        ("assetlens ingest (CLI, auto)", r["cli"], None),
    ]
    for label, row, ratio in rows:
        if "error" in row:
            print(f"  {label:<36} failed: {row['error']}")
            continue
        rss = row.get("rss_peak_mb", row.get("peak_rss_mb"))
        times = f"{row['seconds']:>9.2f}{row['images_per_s']:>9.2f}{row['cpu_cores']:>7.2f}"
        extra = f"{f'{ratio:.1f}x' if ratio else '':>9}{f'{rss:.0f} MB' if rss else '':>10}"
        print(f"  {label:<36}{times}{row['images_per_cpu_s']:>11.2f}{extra}")
    print("\n  text query latency (one query, uncached):")
    for mode, t in r["text"].items():
        cpu = f"CPU {t['median_cpu_ms']:.2f} ms"
        print(f"    {mode:<28} median {t['median_ms']:7.2f} ms  p90 {t['p90_ms']:7.2f} ms  {cpu}")
    print(f"\n  one-off: {r['one_off']}")
    print(f"  load average (1 min): {r['load_average_1min']}; process peak RSS {r['peak_rss_mb']:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=500, help="JPEGs in the corpus (default 500)")
    parser.add_argument("--model", default="ViT-B-32@random", help="CLIP model (default ViT-B-32@random)")
    parser.add_argument("--workdir", default=".bench/ingest", help="corpus and scratch dir (git-ignored)")
    parser.add_argument("--workers-sweep", default="1", help="other decode-thread counts for the best mode")
    parser.add_argument("--memory-only", action="store_true", help="resident memory over a long ingest")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the network runs")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    args = parser.parse_args()
    if args.images < 1:
        parser.error("--images must be at least 1")
    args.workers_sweep = [int(w) for w in args.workers_sweep.split(",") if w]
    logging.basicConfig(level=logging.ERROR)  # open_clip's "initialized randomly" and our own warning
    result = run_memory(args) if args.memory_only else run(args)
    if args.json or args.memory_only:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)


if __name__ == "__main__":
    main()
