"""Real media made at test time: speech with espeak-ng, WAV files, video clips with PyAV.

The one home of the tests' media helpers. Samples are float arrays in ``[-1, 1]``, written as
16-bit PCM. A missing espeak-ng fails the test rather than skipping it: CI installs it, and a
skip would hide a broken CI.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import wave
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

SAMPLE_RATE = 16_000
"""The rate :func:`speak` writes (what Whisper and :mod:`enrich.audio` use)."""


def write_wav(path: Path, samples: np.ndarray, rate: int, channels: int = 1) -> Path:
    """16-bit PCM WAV from float samples in [-1, 1] (shape (n,) or (n, channels))."""
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """A 16-bit PCM WAV's float32 samples in [-1, 1] (interleaved if multichannel) and rate."""
    with wave.open(str(path)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return pcm.astype(np.float32) / 32768, w.getframerate()


def espeak(text: str, path: Path) -> tuple[np.ndarray, int]:
    """Synthesise ``text`` with espeak-ng (en-us, 150 words a minute) into ``path``, a 22.05 kHz
    mono WAV, and return its samples and rate."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed (apt-get install espeak-ng; .ci/run installs it)")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), text], check=True)
    return read_wav(path)


def sentences_wav(sentences: Sequence[str], path: Path, pause: float = 0.8) -> int:
    """The sentences spoken by espeak-ng one after another with ``pause`` seconds between them,
    as one WAV at ``path``; returns its sample rate."""
    parts: list[np.ndarray] = []
    rate = 0
    for i, sentence in enumerate(sentences):
        samples, rate = espeak(sentence, path.with_name(f"{path.stem}-{i}.wav"))
        parts += [samples, np.zeros(round(pause * rate), np.float32)]
    write_wav(path, np.concatenate(parts), rate)
    return rate


def speak(text: str, path: Path, silence_before: float = 0.0) -> Path:
    """Synthesise ``text`` with espeak-ng into a 16 kHz mono WAV, after some silence."""
    raw = path.with_suffix(".espeak.wav")
    samples, rate = espeak(text, raw)
    raw.unlink()
    # espeak speaks at 22.05 kHz: resample linearly to 16 kHz (plenty for speech).
    n = int(len(samples) * SAMPLE_RATE / rate)
    speech = np.interp(np.linspace(0, len(samples) - 1, n), np.arange(len(samples)), samples)
    silence = np.zeros(int(silence_before * SAMPLE_RATE), np.float32)
    return write_wav(path, np.concatenate([silence, speech]), SAMPLE_RATE)


def make_clip(
    path: Path,
    scenes: list[tuple[float, Image.Image]],
    *,
    speech: Path | None = None,
    size: tuple[int, int] = (320, 240),
    fps: int = 25,
) -> Path:
    """An H.264 MP4 showing each image for its duration, with an optional AAC speech track."""
    container = av.open(str(path), "w")
    video = container.add_stream("libx264", rate=fps)
    video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
    video.options = {"preset": "veryfast"}
    audio = None
    if speech is not None:
        audio = container.add_stream("aac", rate=SAMPLE_RATE)
        audio.layout = "mono"
    index = 0
    for seconds, image in scenes:
        pixels = np.asarray(image.convert("RGB").resize(size))
        for _ in range(round(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, fps)
            container.mux(video.encode(frame))
            index += 1
    container.mux(video.encode(None))
    if audio is not None and speech is not None:
        samples, rate = read_wav(speech)
        pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
        for start in range(0, len(pcm), 1024):
            chunk = pcm[start : start + 1024][None, :]
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="s16", layout="mono")
            frame.sample_rate, frame.pts = rate, start
            container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
    container.close()
    return path


def _words(text: str) -> list[str]:
    """Lowercase words with punctuation stripped (apostrophes kept)."""
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word error rate: word-level Levenshtein distance over the reference length."""
    ref, hyp = _words(reference), _words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        diagonal, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (r != h))
    return row[len(hyp)] / max(1, len(ref))
