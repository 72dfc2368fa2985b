"""Real media made at test time: speech with espeak-ng, video clips with PyAV."""

from __future__ import annotations

import shutil
import subprocess
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

SAMPLE_RATE = 16_000


def speak(text: str, path: Path, silence_before: float = 0.0) -> Path:
    """Synthesise ``text`` with espeak-ng into a 16 kHz mono WAV, after some silence."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed (apt-get install espeak-ng; .ci/run installs it)")
    raw = path.with_suffix(".espeak.wav")
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), text], check=True)
    with wave.open(str(raw)) as w:
        rate, samples = w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), np.int16)
    raw.unlink()
    # espeak speaks at 22.05 kHz: resample linearly to 16 kHz (plenty for speech).
    n = int(len(samples) * SAMPLE_RATE / rate)
    speech = np.interp(np.linspace(0, len(samples) - 1, n), np.arange(len(samples)), samples).astype(np.int16)
    audio = np.concatenate([np.zeros(int(silence_before * SAMPLE_RATE), np.int16), speech])
    write_wav(path, audio)
    return path


def write_wav(path: Path, samples: np.ndarray) -> Path:
    """Write int16 mono samples at 16 kHz."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(samples.astype(np.int16).tobytes())
    return path


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), np.int16)


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
        samples = read_wav(speech)
        for start in range(0, len(samples), 1024):
            chunk = samples[start : start + 1024][None, :]
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="s16", layout="mono")
            frame.sample_rate, frame.pts = SAMPLE_RATE, start
            container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
    container.close()
    return path


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level Levenshtein distance over the reference length (case and punctuation ignored)."""
    ref = "".join(c if c.isalnum() or c.isspace() else " " for c in reference.lower()).split()
    hyp = "".join(c if c.isalnum() or c.isspace() else " " for c in hypothesis.lower()).split()
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(len(ref), 1)
