"""Ingest throughput: the AssetLens pipeline against a naive one-image-at-a-time CLIP loop.

Measures, on the same camera-size JPEGs, in the same process and with the same network
(``ViT-B-32@random`` by default: seeded random weights, so timing only, no meaningful tags):

- naive: ``Image.open().convert("RGB")``, open_clip's own preprocess transform, and
  ``encode_image`` on one image at a time (the baseline);
- pipeline: ``Ingester.ingest`` into a fresh store (hashing, draft-mode decode in worker
  threads, batched encode, tagging, SQLite writes, index sync). The one-off vocabulary
  label-embedding cost is computed before the timed region and reported separately;
- decode-only: ``decode_image`` + ``prepare_image``, single thread, no network.

Run on demand (not collected by pytest)::

    python tests/benchmarks/bench_ingest.py [--images N] [--model ViT-B-32@random] [--workdir DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from PIL import Image, ImageEnhance, ImageOps

from enrich.decode import decode_image
from enrich.pipeline import Ingester, IngestOptions
from enrich.tagging import Tagger
from models.clip import ClipEncoder, prepare_image
from models.registry import resolve_model
from models.settings import ModelSettings
from models.vocab import load_vocabulary
from search.library import Library
from search.settings import SearchSettings

PHOTOS = Path(__file__).resolve().parents[1] / "data" / "photos"
SIZES = ((4000, 3000), (1920, 1080))  # 12 MP camera frame, full-HD still, alternately
SEED = 1234
CORPUS_VERSION = 1  # bump when the generation below changes
Timing = tuple[float, float]  # (wall seconds, CPU seconds of this process, all threads)


def _clock() -> Timing:
    return time.perf_counter(), time.process_time()


def _since(start: Timing) -> Timing:
    wall, cpu = _clock()
    return wall - start[0], cpu - start[1]


def _row(n: int, timing: Timing) -> dict[str, float]:
    wall, cpu = timing
    # cpu_cores well below the threads in use means other processes took the CPU meanwhile.
    return {"seconds": round(wall, 2), "images_per_s": round(n / wall, 2), "cpu_cores": round(cpu / wall, 2)}


def make_corpus(directory: Path, count: int) -> list[Path]:
    """Write ``count`` JPEGs (quality 90) derived from the test photos; reuse a matching corpus."""
    manifest = directory / "corpus.json"
    want = {"images": count, "seed": SEED, "version": CORPUS_VERSION}
    files = [directory / f"img{i:05d}.jpg" for i in range(count)]
    if manifest.exists() and json.loads(manifest.read_text()) == want and all(f.exists() for f in files):
        return files
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    sources = [Image.open(p).convert("RGB") for p in sorted(PHOTOS.glob("*.jpg"))]
    rng, noise = random.Random(SEED), np.random.default_rng(SEED)
    for i, path in enumerate(files):
        im, (w, h) = sources[i % len(sources)], SIZES[i % 2]
        # Random crop with the target aspect ratio covering 60-100% of the source's width or height.
        scale = rng.uniform(0.6, 1.0)
        cw = min(im.width, im.height * w / h) * scale
        ch = cw * h / w
        x, y = rng.uniform(0, im.width - cw), rng.uniform(0, im.height - ch)
        out = im.resize((w, h), Image.Resampling.BICUBIC, box=(x, y, x + cw, y + ch))
        if rng.random() < 0.5:
            out = ImageOps.mirror(out)
        for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
            out = enhance(out).enhance(rng.uniform(0.75, 1.25))
        # Sensor-like grain: upscaled photos are unnaturally smooth and would make the JPEGs
        # (and their entropy decoding) far cheaper than real camera files.
        grain = noise.normal(0, 4, (h, w, 1)).astype(np.int16)
        pixels = np.clip(np.asarray(out, dtype=np.int16) + grain, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(path, quality=90)
    manifest.write_text(json.dumps(want))
    return files


def bench_naive(encoder: ClipEncoder, files: list[Path]) -> Timing:
    """Time of the baseline loop: full decode, open_clip preprocess, batch-of-one encode."""
    model = encoder._model
    cfg = open_clip.get_model_preprocess_cfg(model)
    preprocess = open_clip.image_transform(
        cfg["size"],
        is_train=False,
        mean=cfg["mean"],
        std=cfg["std"],
        resize_mode=cfg.get("resize_mode"),
        interpolation=cfg.get("interpolation"),
    )
    with torch.inference_mode():
        for path in files[:3]:  # warm-up: the first batch-of-one calls are several times slower
            model.encode_image(preprocess(Image.open(path).convert("RGB"))[None].to(encoder.device))
        start = _clock()
        for path in files:
            tensor = preprocess(Image.open(path).convert("RGB"))
            model.encode_image(tensor[None].to(encoder.device))
    return _since(start)


def bench_decode(files: list[Path], size: int) -> Timing:
    """Time to decode (draft mode) and prepare every file in one thread."""
    start = _clock()
    for path in files:
        prepare_image(decode_image(path, min_side=size).image, size)
    return _since(start)


def bench_pipeline(encoder: ClipEncoder, name: str, corpus: Path, workdir: Path) -> dict[str, Any]:
    """Ingest ``corpus`` into a fresh library; returns timings and the ingest report."""
    data_dir = Path(tempfile.mkdtemp(prefix="library-", dir=workdir))
    lib = Library(SearchSettings(data_dir=data_dir), ModelSettings(clip_model=name))
    try:
        # Label embeddings are cached across runs in the work dir (minutes on a small CPU).
        tagger = Tagger(encoder, load_vocabulary(), workdir / "label-cache")
        cached = (workdir / "label-cache" / f"labels-{tagger.cache_key}.npy").exists()
        start = time.perf_counter()
        tagger.label_embeddings()
        labels_s = time.perf_counter() - start
        options = IngestOptions(progress=False)
        start = _clock()
        report = Ingester(lib.store, encoder, tagger, lib.index).ingest([corpus], options)
        return {
            "timing": _since(start),
            "label_embeddings_s": round(labels_s, 2),
            "label_embeddings_cached": cached,
            "vocabulary_tags": len(tagger.tags),
            "workers": options.workers,
            "batch_size": options.batch_size,
            "report": report.as_dict(),
        }
    finally:
        lib.close()
        shutil.rmtree(data_dir, ignore_errors=True)


def machine() -> dict[str, Any]:
    """CPU model, cores, library versions and torch threads."""
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "open_clip": open_clip.__version__,
        "pillow": Image.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(args.workdir)
    corpus = workdir / f"corpus-{args.images}"
    start = time.perf_counter()
    files = make_corpus(corpus, args.images)
    corpus_s = time.perf_counter() - start
    spec = resolve_model(args.model)
    encoder = ClipEncoder(spec, ModelSettings(clip_model=args.model))
    start = time.perf_counter()
    encoder.load()
    load_s = time.perf_counter() - start
    # Warm-up outside every timed region: page cache, and the batched encode's first call.
    load_before = os.getloadavg()[0]
    decode = bench_decode(files, encoder.image_size)
    encoder.encode_prepared(np.zeros((32, encoder.image_size, encoder.image_size, 3), np.uint8))
    naive = bench_naive(encoder, files)
    pipe = bench_pipeline(encoder, args.model, corpus, workdir)
    n = len(files)
    pipe_timing = pipe.pop("timing")
    return {
        "benchmark": "ingest",
        "model": spec.model_id,
        "semantic": spec.semantic,
        "images": n,
        "corpus": {
            "dir": str(corpus),
            "sizes": [f"{w}x{h}" for w, h in SIZES],
            "mean_file_mb": round(sum(f.stat().st_size for f in files) / n / 1e6, 2),
            "generated_or_checked_s": round(corpus_s, 1),
        },
        "machine": machine(),
        "model_load_s": round(load_s, 2),
        "load_average_1min": {"start": round(load_before, 2), "end": round(os.getloadavg()[0], 2)},
        "naive": _row(n, naive),
        "pipeline": {**pipe, **_row(n, pipe_timing)},
        "ratio_pipeline_over_naive": round(naive[0] / pipe_timing[0], 2),
        "decode_only": {**_row(n, decode), "threads": 1},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def print_table(r: dict[str, Any]) -> None:
    m, p = r["machine"], r["pipeline"]
    print(f"AssetLens ingest benchmark: {r['images']} images, model {r['model']}")
    if not r["semantic"]:
        print("  random weights: timing only, tags and vectors carry no meaning")
    print(f"  machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['torch_threads']} threads)")
    print(
        f"  corpus: {r['corpus']['dir']} ({', '.join(r['corpus']['sizes'])} alternately, "
        f"mean {r['corpus']['mean_file_mb']} MB)"
    )
    print()
    print(f"  {'run':<34}{'seconds':>10}{'images/s':>12}{'CPU cores':>11}")
    rows = [
        ("naive loop (baseline)", r["naive"]),
        (f"pipeline ({p['workers']} workers, batch {p['batch_size']})", p),
        ("decode + prepare only (1 thread)", r["decode_only"]),
    ]
    for label, row in rows:
        print(f"  {label:<34}{row['seconds']:>10.2f}{row['images_per_s']:>12.2f}{row['cpu_cores']:>11.2f}")
    print()
    print(f"  pipeline / naive: {r['ratio_pipeline_over_naive']:.2f}x")
    how = "loaded from cache" if p["label_embeddings_cached"] else "computed"
    print(
        f"  label embeddings ({p['vocabulary_tags']} tags, {how}, one-off, not timed above): "
        f"{p['label_embeddings_s']:.2f} s"
    )
    load = r["load_average_1min"]
    print(f"  1-min load average: {load['start']} at start, {load['end']} at end (other processes)")
    print(f"  model load: {r['model_load_s']:.2f} s; peak RSS: {r['peak_rss_mb']:.0f} MB")
    print(f"  ingest report: {p['report']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=200, help="corpus size (default 200)")
    parser.add_argument("--model", default="ViT-B-32@random", help="CLIP model (default ViT-B-32@random)")
    parser.add_argument("--workdir", default=".bench/ingest", help="corpus and scratch dir (git-ignored)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    args = parser.parse_args()
    if args.images < 1:
        parser.error("--images must be at least 1")
    logging.basicConfig(level=logging.ERROR)  # open_clip's "initialized randomly" and our own warning
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)


if __name__ == "__main__":
    main()
