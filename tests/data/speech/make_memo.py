"""Make ``spring_memo.ogg``, the spoken sample of the README quickstart (run once; the file is committed).

A voice memo of four sentences, spoken by espeak-ng (en-us, 150 words a minute) with a pause
between them, resampled to 16 kHz mono and encoded as Ogg Opus at 24 kb/s with PyAV (about
40 KB). The phrase "spring collection" opens the third sentence, a few seconds in, so a
transcript search has to find the right moment, not just the file.

    python tests/data/speech/make_memo.py

Needs espeak-ng (``apt-get install espeak-ng``) and the project's environment (PyAV, numpy).
espeak-ng makes a slightly different waveform on another version: the committed file is the
reference; run this only to change the memo.
"""

from __future__ import annotations

import subprocess
import tempfile
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

SENTENCES = (
    "Voice memo for the design team, recorded on Monday.",
    "The studio shoot moves to Thursday morning.",
    "The spring collection launches in March, with twelve new sneakers in three colours.",
    "Please send the final photos to the archive by Friday.",
)
PAUSE_S = 0.7
RATE = 16_000
OUT = Path(__file__).with_name("spring_memo.ogg")


def spoken(text: str) -> np.ndarray:
    """``text`` as espeak-ng says it, float samples at :data:`RATE`."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), text], check=True)
        with wave.open(str(wav)) as w:
            rate = w.getframerate()
            samples = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768
    n = round(len(samples) * RATE / rate)  # espeak speaks at 22.05 kHz
    return np.interp(np.linspace(0, len(samples) - 1, n), np.arange(len(samples)), samples).astype(np.float32)


def main() -> None:
    parts: list[np.ndarray] = []
    for sentence in SENTENCES:
        start = sum(len(p) for p in parts) / RATE
        print(f"{start:5.2f}s  {sentence}")
        parts += [spoken(sentence), np.zeros(round(PAUSE_S * RATE), np.float32)]
    pcm = (np.clip(np.concatenate(parts), -1, 1) * 32767).astype(np.int16)
    with av.open(str(OUT), "w", format="ogg") as container:
        stream = container.add_stream("libopus", rate=48_000)
        stream.layout, stream.bit_rate = "mono", 24_000
        for at in range(0, len(pcm), 960):
            frame = av.AudioFrame.from_ndarray(pcm[None, at : at + 960], format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = RATE, at, Fraction(1, RATE)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    print(f"{OUT.name}: {len(pcm) / RATE:.1f} s, {OUT.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
