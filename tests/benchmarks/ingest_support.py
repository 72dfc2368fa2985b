"""Support for ``bench_ingest.py``: its corpora (generated from the test photos, fixed seeds,
cached), resident-memory sampling and the machine description.

- :func:`make_corpus`: camera-size JPEGs (4000x3000 and 1920x1080 alternately, quality 90, with
  sensor-like grain), some PNGs (full-HD stills and RGBA product cut-outs) and a few H.264 videos.
- :func:`make_small_corpus`: many small but realistic JPEGs (800x600, quality 85, grain) for the
  memory run, where the count matters and the pixels do not.

A corpus is reused while its ``corpus.json`` manifest matches what was asked for.
"""

from __future__ import annotations

import json
import os
import platform
import random
import shutil
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import open_clip
import torch
from cpu_info import cpu_name
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

PHOTOS = Path(__file__).resolve().parents[1] / "data" / "photos"
SIZES = ((4000, 3000), (1920, 1080))  # 12 MP camera frame, full-HD still, alternately
SEED = 1234
VERSION = 2  # bump when the generation below changes


def _sources() -> list[Image.Image]:
    return [Image.open(p).convert("RGB") for p in sorted(PHOTOS.glob("*.jpg"))]


def _reuse(directory: Path, want: dict[str, object], files: list[Path]) -> bool:
    manifest = directory / "corpus.json"
    return manifest.exists() and json.loads(manifest.read_text()) == want and all(f.exists() for f in files)


def _photo(
    im: Image.Image, size: tuple[int, int], rng: random.Random, noise: np.random.Generator, grain: float = 4.0
) -> Image.Image:
    """A random crop of ``im`` at ``size``: flipped, colour-jittered, with grain (fixed seeds)."""
    w, h = size
    scale = rng.uniform(0.6, 1.0)  # crop covering 60-100% of the source's width or height
    cw = min(im.width, im.height * w / h) * scale
    ch = cw * h / w
    x, y = rng.uniform(0, im.width - cw), rng.uniform(0, im.height - ch)
    out = im.resize((w, h), Image.Resampling.BICUBIC, box=(x, y, x + cw, y + ch))
    if rng.random() < 0.5:
        out = ImageOps.mirror(out)
    for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
        out = enhance(out).enhance(rng.uniform(0.75, 1.25))
    # Upscaled photos are unnaturally smooth and would make the JPEGs (and their entropy
    # decoding, the bulk of a draft-mode decode) far cheaper than real camera files.
    pixels = np.asarray(out, dtype=np.int16) + noise.normal(0, grain, (h, w, 1)).astype(np.int16)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def make_corpus(directory: Path, jpegs: int, pngs: int = 10, videos: int = 3) -> dict[str, list[Path]]:
    """Write (or reuse) the throughput corpus: ``jpeg/``, ``png/`` and ``video/`` under ``directory``."""
    want = {"jpegs": jpegs, "pngs": pngs, "videos": videos, "seed": SEED, "version": VERSION}
    files = {
        "jpeg": [directory / "jpeg" / f"img{i:05d}.jpg" for i in range(jpegs)],
        "png": [directory / "png" / f"still{i:03d}.png" for i in range(pngs)],
        "video": [directory / "video" / f"clip{i:02d}.mp4" for i in range(videos)],
    }
    if _reuse(directory, want, [f for group in files.values() for f in group]):
        return files
    shutil.rmtree(directory, ignore_errors=True)
    for kind in files:
        (directory / kind).mkdir(parents=True)
    sources = _sources()
    rng, noise = random.Random(SEED), np.random.default_rng(SEED)
    for i, path in enumerate(files["jpeg"]):
        _photo(sources[i % len(sources)], SIZES[i % 2], rng, noise).save(path, quality=90)
    for i, path in enumerate(files["png"]):
        source = sources[(i * 3) % len(sources)]
        if i % 2:  # a product cut-out: the subject on a transparent background
            still = _photo(source, (1200, 1200), rng, noise, grain=2.0).convert("RGBA")
            mask = Image.new("L", still.size, 0)
            ImageDraw.Draw(mask).ellipse((150, 100, 1050, 1100), fill=255)
            still.putalpha(mask)
        else:  # a full-HD still (a graded frame, an export from an editor)
            still = _photo(source, (1920, 1080), rng, noise, grain=2.0)
        still.save(path, compress_level=6)
    for i, path in enumerate(files["video"]):
        scenes = [sources[(i * 2 + k) % len(sources)] for k in range(3)]
        _write_video(path, scenes, seconds_per_scene=5.0, rng=rng, noise=noise)
    (directory / "corpus.json").write_text(json.dumps(want))
    return files


def _write_video(
    path: Path,
    scenes: list[Image.Image],
    *,
    seconds_per_scene: float,
    rng: random.Random,
    noise: np.random.Generator,
) -> None:
    """An H.264 MP4 at 1280x720, 25 fps: each scene a slow pan across a photo (so frames differ)."""
    fps, size = 25, (1280, 720)
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
    stream.options = {"preset": "veryfast", "g": "50"}
    index = 0
    for scene in scenes:
        wide = np.asarray(_photo(scene, (1440, 810), rng, noise, grain=2.0))
        frames = round(seconds_per_scene * fps)
        for k in range(frames):
            dx = round(k * (wide.shape[1] - size[0]) / frames)
            dy = round(k * (wide.shape[0] - size[1]) / frames)
            pixels = np.ascontiguousarray(wide[dy : dy + size[1], dx : dx + size[0]])
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, fps)
            container.mux(stream.encode(frame))
            index += 1
    container.mux(stream.encode(None))
    container.close()


def make_small_corpus(directory: Path, count: int) -> list[Path]:
    """Write (or reuse) ``count`` 800x600 JPEGs (quality 85) in subfolders of 1000 files."""
    want = {"small_jpegs": count, "seed": SEED, "version": VERSION}
    files = [directory / f"d{i // 1000:03d}" / f"small{i:06d}.jpg" for i in range(count)]
    if _reuse(directory, want, files):
        return files
    shutil.rmtree(directory, ignore_errors=True)
    sources = _sources()
    rng, noise = random.Random(SEED), np.random.default_rng(SEED)
    # Base images made once, then cheaply varied: 10 000 full generations would take minutes.
    bases = [np.asarray(_photo(sources[i % len(sources)], (800, 600), rng, noise)) for i in range(64)]
    for i, path in enumerate(files):
        path.parent.mkdir(parents=True, exist_ok=True)
        base = bases[i % len(bases)]
        shift = i // len(bases)  # a different offset per round: every file distinct (no duplicates)
        pixels = np.roll(base, shift=(shift, 2 * shift), axis=(0, 1))
        Image.fromarray(pixels).save(path, quality=85)
    (directory / "corpus.json").write_text(json.dumps(want))
    return files


def rss_mb() -> float:
    """Resident memory of this process now (Linux ``/proc/self/statm``)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class RssSampler(threading.Thread):
    """Samples resident memory (and, optionally, files done) every ``interval`` seconds."""

    def __init__(self, interval: float = 0.5, progress: Callable[[], int] | None = None) -> None:
        super().__init__(daemon=True)
        self.interval, self.progress = interval, progress
        self.samples: list[tuple[float, float, int]] = []  # (seconds, MB, files done)
        self._stop_event = threading.Event()

    def run(self) -> None:
        start = time.perf_counter()
        while True:
            done = self.progress() if self.progress else 0
            self.samples.append((round(time.perf_counter() - start, 2), round(rss_mb(), 1), done))
            if self._stop_event.wait(self.interval):
                break

    def stop(self) -> list[tuple[float, float, int]]:
        self._stop_event.set()
        self.join()
        return self.samples


def vm_hwm_kb(pid: int) -> int:
    """Peak resident memory of another process since it started its program (Linux)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)


def machine() -> dict[str, Any]:
    """CPU model, cores, library versions and threads."""
    import onnxruntime

    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "onnxruntime": onnxruntime.__version__,
        "open_clip": open_clip.__version__,
        "pillow": Image.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
