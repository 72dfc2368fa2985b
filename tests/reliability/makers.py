"""Builders of broken and hostile files for :mod:`reliability.corpus`: bombs, lying headers,
cut and garbled bytes, clips without frames, and a file that keeps changing under a reader."""

from __future__ import annotations

import io
import os
import random
import struct
import threading
import wave
import zlib
from pathlib import Path

import av
import numpy as np
from media import SAMPLE_RATE
from PIL import Image


class ChangingFile:
    """A thread that keeps rewriting one image (in place, truncating, appending) until stopped.

    Args:
        path: The file.
        versions: Contents it cycles through; it ends on the last one.
    """

    def __init__(self, path: Path, versions: list[bytes]) -> None:
        self.path, self.versions = path, versions
        self.writes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="changing-file", daemon=True)
        path.write_bytes(versions[0])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop writing and leave the file holding the last version."""
        self._stop.set()
        self._thread.join(timeout=10)
        self.path.write_bytes(self.versions[-1])

    def _run(self) -> None:
        rng = random.Random(7)
        while not self._stop.is_set():
            data = rng.choice(self.versions)
            how = rng.randrange(3)
            with self.path.open("r+b") as fh:
                if how == 0:  # rewrite in place, shorter or longer
                    fh.truncate(0)
                    fh.write(data)
                elif how == 1:  # a partial write, as a slow copy would leave it
                    fh.truncate(0)
                    fh.write(data[: rng.randrange(1, len(data))])
                else:  # bytes appended to a valid file
                    fh.seek(0, os.SEEK_END)
                    fh.write(os.urandom(rng.randrange(1, 4096)))
            self.writes += 1
            self._stop.wait(rng.uniform(0.001, 0.01))


# --- file builders ---------------------------------------------------------------------------


def noisy_image(size: tuple[int, int], seed: int, mode: str = "RGB") -> Image.Image:
    """A noisy gradient (noise keeps JPEG/WebP data long enough to cut it meaningfully)."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // max(w, 1), yy * 255 // max(h, 1), (xx + yy) % 256], axis=-1)
    noisy = np.clip(base + rng.integers(-40, 40, base.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(noisy, "RGB").convert(mode)


def encoded(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of ``width`` x ``height`` zeros: ~100 KB that decodes to gigabytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    packer = zlib.compressobj(9)
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed pixels
    block = row * 256
    parts = [packer.compress(block) for _ in range(height // 256)]
    parts += [packer.compress(row * (height % 256)), packer.flush()]
    png = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
    return png + _png_chunk(b"IDAT", b"".join(parts)) + _png_chunk(b"IEND", b"")


def gif_huge_canvas() -> bytes:
    """A GIF whose logical screen is 65535 x 65535 around a single 1x1 frame."""
    gif = bytearray(encoded(Image.new("P", (1, 1)), "GIF"))
    gif[6:10] = struct.pack("<HH", 65535, 65535)
    return bytes(gif)


def wav_claiming(seconds: float, data: bytes, rate: int = SAMPLE_RATE) -> bytes:
    """A 16-bit mono WAV whose header claims ``seconds`` of audio but which holds ``data``."""
    claimed = int(seconds * rate) * 2
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    return (
        b"RIFF" + struct.pack("<I", 36 + claimed) + b"WAVE"
        + b"fmt " + struct.pack("<I", 16) + fmt
        + b"data" + struct.pack("<I", claimed) + data
    )  # fmt: skip


def wav_bytes(samples: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return out.getvalue()


def write_clip(
    path: Path, seconds: float, seed: int, *, fps: int = 10, options: dict[str, str] | None = None
) -> Path:
    """A small silent H.264 clip of noisy frames (``options``: muxer options, e.g. faststart)."""
    container = av.open(str(path), "w", options=options or {})
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
    for i in range(round(seconds * fps)):
        frame = av.VideoFrame.from_ndarray(np.asarray(noisy_image((160, 120), seed + i)), format="rgb24")
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
    container.close()
    return path


def write_frameless_video(path: Path) -> Path:
    """An MP4 with a declared H.264 stream that holds no frame at all."""
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=10)
    stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
    container.start_encoding()  # the header, then a trailer with an empty index
    container.close()
    return path


def cut(data: bytes, fraction: float) -> bytes:
    return data[: max(1, int(len(data) * fraction))]


def garble(data: bytes, start: int, length: int, seed: int) -> bytes:
    rng = random.Random(seed)
    junk = bytes(rng.randrange(256) for _ in range(length))
    return data[:start] + junk + data[start + length :]
