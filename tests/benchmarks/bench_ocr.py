"""OCR cost and quality: reading alone, the ``auto`` gate, and what OCR adds to an ingest.

One run, one corpus (camera-size JPEGs from the test photos as in ``bench_ingest``, every
``--text-every``-th with a phrase drawn on it, cached under ``.bench/ocr/``), one CPU. Measured:

- **OCR alone**: the OCR stage (``enrich.ocr.TextStage``) on each picture, one thread of one
  ONNX Runtime thread (as a decode worker runs it), given the draft the pipeline decoded for
  CLIP (untimed): ``on`` decodes again at OCR resolution and reads the whole picture (photos
  with text and without, weighted by the corpus' mix); ``auto`` runs the gate on the draft and
  reads only around the lines it found. CPU per image, images/s, and the CER of what each
  found on the photos with text;
- **gate**: ``TextReader.find_text`` on the drafts at several long sides: CPU per image, text
  photos flagged (recall) and text-free photos flagged;
- **ingest**: ``Ingester.ingest`` of the corpus (``ViT-B-32@random``: the real network's cost)
  into a fresh library with ``--ocr off`` (the baseline), ``auto`` and ``on``, in turn, for
  ``--rounds`` rounds (the machine is shared: each mode's images/s is divided by the baseline's
  of the same round, and the median of those ratios is reported, with every round). The CLIP
  model, its label embeddings and the OCR models are loaded before the clock starts, as in a
  long run; images/s, CPU per image, cores busy, and what OCR found;
- **keyframe side** (``--frame-sides``): which slide text a video's keyframes show legibly at
  each shorter side, and what extracting and reading them costs: a 1280x720 H.264 talk of six
  slides, each with a title, two body lines and a footer at ``--slide-text`` heights (fractions
  of the frame's height), read in ``auto`` and ``on``;
- **quality**: CER on the rendered set of the tests (``tests/ocr_support.py``), and the share of
  text-free photos given text.

Run on demand (pytest does not collect it)::

    python tests/benchmarks/bench_ocr.py [--images 200] [--text-every 20] [--rounds 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: ocr_support

import numpy as np
from ingest_support import SEED, SIZES, _photo, _reuse, _sources, machine
from media import make_clip
from ocr_support import PHRASES, char_error_rate, overlaps, photos, render, rendered_set, text_free_set
from PIL import ImageDraw, ImageFont

from assetlens.enrich.decode import decode_image
from assetlens.enrich.keyframes import KeyframeOptions
from assetlens.enrich.ocr import TextStage
from assetlens.enrich.pipeline import Ingester, IngestOptions
from assetlens.enrich.tagging import Tagger
from assetlens.enrich.video import extract_keyframes
from assetlens.models.ocr import TextReader
from assetlens.models.settings import ModelSettings, OcrSettings
from assetlens.models.vocab import load_vocabulary
from assetlens.search.library import LibraryCore
from assetlens.search.settings import SearchSettings

ROOT = Path(__file__).resolve().parents[2] / ".bench" / "ocr"
VERSION = 1


def make_corpus(directory: Path, count: int, text_every: int) -> tuple[list[Path], dict[Path, str]]:
    """Camera JPEGs (as ``bench_ingest``), every ``text_every``-th with a banner 4% of its height."""
    want = {"jpegs": count, "text_every": text_every, "seed": SEED, "version": VERSION}
    files = [directory / f"img{i:05d}.jpg" for i in range(count)]
    texts = {f: PHRASES[i % len(PHRASES)] for i, f in enumerate(files) if i % text_every == text_every // 2}
    if _reuse(directory, want, files):
        return files, texts
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    sources, rng, noise = _sources(), random.Random(SEED), np.random.default_rng(SEED)
    for i, path in enumerate(files):
        size = SIZES[i % 2]
        picture = _photo(sources[i % len(sources)], size, rng, noise)
        if path in texts:
            picture = render(picture, texts[path], size=int(size[1] * 0.04 * 1.4),
                             colour=(250, 250, 250), background=("band", "label", "outline", "plain")[i % 4],
                             rng=rng, long_side=max(size)).image  # fmt: skip
        picture.save(path, quality=90)
    (directory / "corpus.json").write_text(json.dumps(want))
    return files, texts


def cpu() -> float:
    return time.process_time()


def timed(work: Any, items: list[Any], threads: int = 1) -> tuple[list[Any], float, float]:
    """Results, wall seconds and CPU seconds of ``work`` over ``items``."""
    wall, used = time.perf_counter(), cpu()
    if threads == 1:
        out = [work(x) for x in items]
    else:
        with ThreadPoolExecutor(threads) as pool:
            out = list(pool.map(work, items))
    return out, time.perf_counter() - wall, cpu() - used


def bench_stage(
    reader: TextReader, mode: str, files: list[Path], texts: dict[Path, str], clip_side: int
) -> dict[str, Any]:
    """The OCR stage's own work per image in an ingest: CPU and what it found.

    The draft (the CLIP decode) is made untimed, as the pipeline already has it; timed is what
    the stage adds: the gate (``auto``), the decode at OCR resolution and the reading.
    """
    stage = TextStage(reader, mode)
    cers, used_all, wall_all = [], 0.0, 0.0
    for f in files:
        decoded = decode_image(f, min_side=clip_side)
        full = (decoded.metadata.width, decoded.metadata.height)
        wall, used = time.perf_counter(), cpu()
        lines = stage.image(f, decoded.image, full)
        used_all, wall_all = used_all + cpu() - used, wall_all + time.perf_counter() - wall
        if f in texts:
            # The photos hold text of their own (a watch, a badge): score the lines sharing a word
            # with the drawn phrase.
            words = set(re.findall(r"\w+", texts[f].casefold()))
            near = [x.text for x in lines if words & set(re.findall(r"\w+", x.text.casefold()))]
            cers.append(char_error_rate(texts[f], " ".join(near)))
    return {
        "images": len(files),
        "cpu_ms_per_img": round(1000 * used_all / len(files), 1),
        "img_per_s_one_thread": round(len(files) / wall_all, 2),
        "text_images": len(cers),
        "cer_on_text_images": round(sum(cers) / len(cers), 4) if cers else None,
    }


def bench_gate(files: list[Path], texts: set[Path], sides: list[int], clip_side: int) -> dict[str, Any]:
    drafts = {f: decode_image(f, min_side=clip_side).image for f in files}
    out = {}
    for side in sides:
        reader = TextReader(OcrSettings(ocr_gate_side=side))
        reader.has_text(next(iter(drafts.values())))  # load outside the timing
        flags, _, used = timed(reader.has_text, list(drafts.values()))
        flagged = {f for f, hit in zip(drafts, flags, strict=True) if hit}
        out[str(side)] = {
            "cpu_ms_per_img": round(1000 * used / len(files), 2),
            "recall": f"{len(flagged & texts)}/{len(texts)}",
            "text_free_flagged": f"{len(flagged - texts)}/{len(files) - len(texts)}",
        }
    return out


def bench_ingest(files: list[Path], texts: dict[Path, str], model: str, rounds: int) -> dict[str, Any]:
    """Ingest the corpus with OCR off, auto and on, in turn, ``rounds`` times, each into a fresh library."""
    folder = ROOT / "ingest-corpus"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    for f in files:
        (folder / f.name).symlink_to(f)
    runs: dict[str, list[dict[str, Any]]] = {"off": [], "auto": [], "on": []}
    readers = {mode: TextReader(OcrSettings(ocr=mode)) for mode in ("auto", "on")}
    for reader in readers.values():  # models loaded before the clock, as in a long run
        reader.load()
        reader.find_text(np.zeros((64, 64, 3), np.uint8))
    for _ in range(rounds):
        for mode in runs:
            with tempfile.TemporaryDirectory(dir=ROOT) as tmp:
                lib = LibraryCore(
                    SearchSettings(data_dir=Path(tmp) / "data"), ModelSettings(clip_model=model)
                )
                tagger = Tagger(lib.encoder, load_vocabulary())  # labels: the machine cache
                ingester = Ingester(lib.store, lib.encoder, tagger, lib.index, reader=readers.get(mode))
                lib.encoder.load()
                tagger.tag_asset(np.zeros((1, lib.encoder.dim), np.float32), [None])  # untimed
                wall, used = time.perf_counter(), cpu()
                report = ingester.ingest([folder], IngestOptions())
                wall, used = time.perf_counter() - wall, cpu() - used
                found = lib.store.ocr.lines_by_asset([i for i, _ in lib.store.uris()])
                by_name = {Path(u).name: found.get(i, []) for i, u in lib.store.uris()}
                hits = sum(any(texts[f] in x.text for x in by_name.get(f.name, [])) for f in texts)
                clip_side = lib.encoder.image_size
                lib.close()
            runs[mode].append({
                "added": report.added, "img_per_s": round(len(files) / wall, 2),
                "cpu_ms_per_img": round(1000 * used / len(files), 1), "cores": round(used / wall, 2),
                "ocr_read": report.ocr_read, "with_text": len(found), "phrases_found": hits,
            })  # fmt: skip
    # Other sessions share the machine: a round's three runs see about the same load, so each
    # mode's ratio to OCR off is taken within a round, and the median over rounds is reported.
    ratios = {
        mode: sorted(r["img_per_s"] / o["img_per_s"] for r, o in zip(rows, runs["off"], strict=True))
        for mode, rows in runs.items()
    }
    return {
        "x_off_median": {mode: round(statistics.median(x), 3) for mode, x in ratios.items()},
        "x_off_per_round": {mode: [round(v, 3) for v in x] for mode, x in ratios.items()},
        "median": {
            mode: {k: statistics.median(r[k] for r in rows) for k in ("img_per_s", "cpu_ms_per_img", "cores")}
            for mode, rows in runs.items()
        },
        "rounds": runs,
        "clip_side": clip_side,
        "load_average": os.getloadavg(),
    }


TITLES = ("Quarterly Results 2025", "Roadmap for Spring", "Customer Growth", "Harvest Market Launch",
          "Team Structure", "Next Steps")  # fmt: skip
BODY = (("Revenue up 14 percent", "Churn down to 3 percent"), ("Launch in April", "Beta with 40 stores"),
        ("New accounts in Berlin", "Retention over 90 days"), ("Opening on Saturday", "Fresh roasted coffee"),
        ("Design and research", "Platform engineering"),
        ("Hire two engineers", "Close the pilot deal"))  # fmt: skip
FOOTER = "Confidential internal review"
PANELS = (
    (246, 246, 240),
    (210, 230, 250),
    (250, 225, 200),
    (215, 245, 215),
    (240, 215, 240),
    (250, 250, 190),
)


def slide_deck(path: Path, heights: tuple[float, float, float], size: tuple[int, int] = (1280, 720)) -> Path:
    """A talk: six slides of 3 s, each a title, two body lines and a footer (``heights``: font sizes
    as fractions of the frame's height)."""
    w, h = size
    fonts = [ImageFont.load_default(size=round(h * x)) for x in heights]
    backdrops = list(photos().values())
    scenes = []
    for i, title in enumerate(TITLES):
        slide = backdrops[i % len(backdrops)].resize(size)
        draw = ImageDraw.Draw(slide)
        draw.rectangle((w // 20, h // 18, w - w // 20, h - h // 18), fill=PANELS[i])
        draw.text((w // 12, h // 10), title, font=fonts[0], fill=(20, 20, 40))
        for j, line in enumerate(BODY[i]):
            draw.text((w // 10, round(h * (0.3 + 0.1 * j))), "- " + line, font=fonts[1], fill=(40, 40, 40))
        draw.text((w // 12, round(h * 0.85)), FOOTER, font=fonts[2], fill=(90, 90, 90))
        scenes.append((3.0, slide))
    return make_clip(path, scenes, size=size)


def bench_frame_sides(
    reader: TextReader, sides: list[int], heights: tuple[float, float, float]
) -> dict[str, Any]:
    """What the keyframes of a slide talk show legibly, and what it costs, per shorter side."""
    video = ROOT / "slides-{}-{}-{}.mp4".format(*heights)
    if not video.exists():
        slide_deck(video, heights)
    out: dict[str, Any] = {"slide_text_heights": heights}
    for side in sides:
        # A keyframe at least every 3 s: one per slide (the panels differ too little for a cut).
        used = cpu()
        _, keyframes = extract_keyframes(video, KeyframeOptions(min_side=side, max_gap=2.9))
        row: dict[str, Any] = {"keyframes": len(keyframes), "extract_cpu_s": round(cpu() - used, 2)}
        for mode in ("auto", "on"):
            used = cpu()
            lines = TextStage(reader, mode).frames([(k.image, k.t) for k in keyframes])
            row[f"{mode}_cpu_ms_per_keyframe"] = round(1000 * (cpu() - used) / len(keyframes), 1)

            def found(text: str, lines: Any = lines) -> bool:
                return any(
                    char_error_rate(text.casefold(), x.text.casefold().lstrip("- ")) <= 0.1 for x in lines
                )

            row[mode] = {
                "titles": f"{sum(map(found, TITLES))}/{len(TITLES)}",
                "body": f"{sum(found(b) for lines in BODY for b in lines)}/{2 * len(BODY)}",
                "footer": found(FOOTER),
            }
        out[str(side)] = row
    return out


def bench_quality(reader: TextReader) -> dict[str, Any]:
    cers = []
    for pic in rendered_set():
        found = " ".join(x.text for x in reader.read(pic.image) if overlaps(x.box, pic.box))
        cers.append(char_error_rate(pic.text, found))
    free = text_free_set()
    given = sum(bool(reader.read(im)) for im in free)
    cer = round(sum(cers) / len(cers), 4)
    return {"rendered": len(cers), "cer_mean": cer, "cer_max": round(max(cers), 3), "text_free": len(free),
            "text_free_given_text": given}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--text-every", type=int, default=20)
    parser.add_argument("--model", default="ViT-B-32@random")
    parser.add_argument("--rounds", type=int, default=5, help="ingest rounds (off, auto, on each)")
    parser.add_argument("--gate-sides", default="256,320,384")
    parser.add_argument("--frame-sides", default="224,288,360,432,480,720")
    parser.add_argument("--slide-text", default="0.05,0.033,0.022", help="title, body, footer heights")
    parser.add_argument(
        "--skip", default="", help="comma-separated sections to skip: quality,stage,gate,frames"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    ROOT.mkdir(parents=True, exist_ok=True)
    files, texts = make_corpus(ROOT / f"corpus-{args.images}-{args.text_every}", args.images, args.text_every)
    settings = OcrSettings()
    reader = TextReader(settings)
    reader.load()
    result: dict[str, Any] = {
        "machine": machine(),
        "ocr_model": reader.model_id,
        "settings": settings.model_dump(),
    }
    result["ingest"] = bench_ingest(files, texts, args.model, args.rounds)
    if "quality" not in skip:
        result["quality"] = bench_quality(reader)
    clip_side = result["ingest"]["clip_side"]
    if "gate" not in skip:
        sides = [int(s) for s in args.gate_sides.split(",")]
        result["gate"] = bench_gate(files, set(texts), sides, clip_side)
    if "stage" not in skip:
        # "on" reads every picture: measured on the text photos and as many others, weighted by the mix.
        plain = [f for f in files if f not in texts][: len(texts) * 3]
        on_text = bench_stage(reader, "on", sorted(texts), texts, clip_side)
        on_plain = bench_stage(reader, "on", plain, texts, clip_side)
        share = len(texts) / len(files)
        on_ms = share * on_text["cpu_ms_per_img"] + (1 - share) * on_plain["cpu_ms_per_img"]
        result["ocr_on"] = {"with_text": on_text, "without_text": on_plain, "cpu_ms_per_img": round(on_ms, 1)}
        result["ocr_auto"] = bench_stage(reader, "auto", files, texts, clip_side)
    if "frames" not in skip:
        heights = tuple(float(x) for x in args.slide_text.split(","))
        sides = [int(s) for s in args.frame_sides.split(",")]
        result["frame_sides"] = bench_frame_sides(reader, sides, heights)  # type: ignore[arg-type]
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
