"""Keyframe extraction speed: the full-decode path against the intra-only fast path.

Generates once (and reuses) a 60 s 1280x720 H.264 clip at 30 fps, GOP 60, made of Ken
Burns pans across the test photos with a hard cut every 4-9 s, then times in one process:

- full path: :func:`enrich.video.extract_keyframes` with default options (every frame
  decoded, 4 analysis frames a second);
- fast path: the same with ``fast_path_after=0`` (intra frames only, ``skip_frame="NONKEY"``);
- decode-only baselines: PyAV decoding every frame / only intra frames, nothing else, to
  show what the scene analysis and keyframe conversion add on top of FFmpeg.

Speed is reported as a multiple of real time (video seconds per wall-clock second), the
best of ``--repeat`` interleaved rounds after one warm-up. Run on demand (not collected by pytest)::

    python tests/benchmarks/bench_keyframes.py [--workdir .bench/keyframes] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from cpu_info import cpu_name
from PIL import Image

from assetlens.enrich.video import KeyframeOptions, extract_keyframes

PHOTOS = Path(__file__).resolve().parents[1] / "data" / "photos"
WIDTH, HEIGHT, FPS, GOP, SECONDS = 1280, 720, 30, 60, 60
CUTS = (0, 6, 11, 19, 23, 30, 37, 41, 48, 54)  # scene starts in seconds; one photo each
CLIP_VERSION = 1  # bump when the generation below changes


def make_clip(directory: Path) -> Path:
    """Write the benchmark clip, or reuse one made by the same recipe."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"pans-{WIDTH}x{HEIGHT}-{FPS}fps-gop{GOP}-v{CLIP_VERSION}.mp4"
    if path.exists():
        return path
    photos = sorted(PHOTOS.glob("*.jpg"))
    partial = path.with_suffix(".partial.mp4")
    container = av.open(str(partial), "w")
    stream = container.add_stream("libx264", rate=FPS)
    stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    stream.codec_context.gop_size = GOP
    stream.options = {"preset": "veryfast", "crf": "23", "keyint_min": str(GOP), "sc_threshold": "0"}
    stream.codec_context.time_base = Fraction(1, FPS)
    bounds = [*CUTS, SECONDS]
    for scene, (begin, end) in enumerate(itertools.pairwise(bounds)):
        # A photo scaled to cover 1.4x the frame, then a diagonal pan across it.
        photo = Image.open(photos[scene % len(photos)]).convert("RGB")
        scale = 1.4 * max(WIDTH / photo.width, HEIGHT / photo.height)
        canvas = np.asarray(photo.resize((round(photo.width * scale), round(photo.height * scale))))
        room_x, room_y = canvas.shape[1] - WIDTH, canvas.shape[0] - HEIGHT
        count = (end - begin) * FPS
        for i in range(count):
            x, y = round(room_x * i / count), round(room_y * (count - i) / count)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(canvas[y : y + HEIGHT, x : x + WIDTH]))
            frame.pts = begin * FPS + i
            container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
    container.close()
    partial.rename(path)
    return path


def decode_only(path: Path, intra_only: bool) -> int:
    """Decode the clip with PyAV and nothing else; returns the number of frames."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if intra_only:
            stream.codec_context.skip_frame = "NONKEY"
        return sum(1 for _ in container.decode(stream))


def interleaved(repeat: int, variants: dict[str, Callable[[], Any]]) -> dict[str, tuple[float, Any]]:
    """Best wall time of each variant and its result; one warm-up each, then ``repeat`` rounds.

    Rounds run the variants in turn, so a slow spell of a shared machine hits them all alike.
    """
    results = {name: work() for name, work in variants.items()}
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(repeat):
        for name, work in variants.items():
            start = time.perf_counter()
            results[name] = work()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: (best[name], results[name]) for name in variants}


def machine() -> dict[str, Any]:
    """CPU model, cores, library versions."""
    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "pyav": av.__version__,
        "ffmpeg": av.ffmpeg_version_info,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    start = time.perf_counter()
    clip = make_clip(Path(args.workdir))
    make_s = time.perf_counter() - start
    with av.open(str(clip)) as container:
        duration = (container.duration or 0) / av.time_base
    timed = interleaved(
        args.repeat,
        {
            "full": lambda: extract_keyframes(clip, KeyframeOptions())[1],
            "fast": lambda: extract_keyframes(clip, KeyframeOptions(fast_path_after=0))[1],
            "decode_all_frames": lambda: decode_only(clip, intra_only=False),
            "decode_intra_only": lambda: decode_only(clip, intra_only=True),
        },
    )
    rows: dict[str, dict[str, Any]] = {}
    for name, (seconds, result) in timed.items():
        row: dict[str, Any] = {"seconds": round(seconds, 3), "x_realtime": round(duration / seconds, 1)}
        if isinstance(result, list):
            row |= {"keyframes": len(result), "times": [round(k.t, 2) for k in result]}
        else:
            row["frames"] = result
        rows[name] = row
    return {
        "benchmark": "keyframes",
        "clip": {
            "path": str(clip),
            "size": f"{WIDTH}x{HEIGHT}",
            "fps": FPS,
            "gop": GOP,
            "duration_s": round(duration, 2),
            "cuts_s": list(CUTS[1:]),
            "mb": round(clip.stat().st_size / 1e6, 1),
            "generated_or_checked_s": round(make_s, 1),
        },
        "machine": machine(),
        "repeat": args.repeat,
        **rows,
        "fast_over_full": round(rows["full"]["seconds"] / rows["fast"]["seconds"], 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def print_table(r: dict[str, Any]) -> None:
    m, c = r["machine"], r["clip"]
    print(f"AssetLens keyframes: {c['duration_s']} s {c['size']} H.264, {c['fps']} fps, GOP {c['gop']}")
    print(f"  machine: {m['cpu']}, {m['cores']} cores; PyAV {m['pyav']}, FFmpeg {m['ffmpeg']}")
    print(f"  clip: {c['path']} ({c['mb']} MB), cuts at {c['cuts_s']} s")
    print()
    print(f"  {'run':<34}{'seconds':>10}{'x real time':>14}{'output':>12}")
    for label, key, unit in (
        ("extract_keyframes, full path", "full", "keyframes"),
        ("extract_keyframes, fast path", "fast", "keyframes"),
        ("PyAV decode all frames (baseline)", "decode_all_frames", "frames"),
        ("PyAV decode intra only (baseline)", "decode_intra_only", "frames"),
    ):
        row = r[key]
        print(f"  {label:<34}{row['seconds']:>10.3f}{row['x_realtime']:>14.1f}{row[unit]:>8} {unit[:5]}")
    print()
    print(f"  fast / full: {r['fast_over_full']:.1f}x (best of {r['repeat']} rounds)")
    print(f"  peak RSS: {r['peak_rss_mb']:.0f} MB")
    print(f"  full-path keyframes at {r['full']['times']} s")
    print(f"  fast-path keyframes at {r['fast']['times']} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default=".bench/keyframes", help="where the clip is kept (git-ignored)")
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds, best reported (default 3)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)


if __name__ == "__main__":
    main()
