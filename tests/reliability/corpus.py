"""Hostile and broken media for the reliability tests, each labelled with what ingest should do.

:func:`build_bad_corpus` writes 59 kinds of bad input under one folder: truncated and
corrupt JPEG/PNG/GIF/WebP/TIFF, empty files, wrong extensions, decompression bombs, extreme
aspect ratios, 1x1/CMYK/16-bit images, broken MP4/MOV, a video without frames, audio without
samples or with a header claiming 10 hours, hostile file names and paths, unreadable files,
symlink loops and a file rewritten while the ingest reads it. Every file is a :class:`Case`
that says what a correct ingest does with it:

- ``fail``: an asset with status ``failed`` and a row in ``failures`` (stage and a reason);
- ``ok``: a fully ingested asset of the given kind (a bad-looking but decodable file);
- ``ignored``: neither an asset nor a failure (not media, hidden, a FIFO, a loop walked once);
- ``ok-or-fail``: either of the first two, never a crash (the file rewritten during the run).

:func:`build_library` writes the small, valid library the crash, concurrency and disk tests
ingest again and again. Everything is generated from fixed seeds, so each run of a test sees
the same bytes.
"""

from __future__ import annotations

import io
import os
import random
import shutil
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from media import SAMPLE_RATE, make_clip, speak
from PIL import Image
from reliability.makers import (
    ChangingFile,
    cut,
    encoded,
    garble,
    gif_huge_canvas,
    noisy_image,
    png_bomb,
    wav_bytes,
    wav_claiming,
    write_clip,
    write_frameless_video,
)

PHOTOS = Path(__file__).resolve().parents[1] / "data" / "photos"
SPEECH = "Welcome to the spring collection. Every jacket is made from recycled wool."
PATH_MAX = 4096  # Linux, including the terminating NUL
NAME_MAX = 255

Expect = Literal["fail", "ok", "ignored", "ok-or-fail"]


@dataclass(frozen=True)
class Case:
    """One bad (or bad-looking) file and what ingest must do with it.

    Attributes:
        kind: Short label of the fault, e.g. ``"jpeg-truncated"``.
        path: The file (absolute, not symlink-resolved: the asset's uri).
        expect: ``fail``, ``ok``, ``ignored`` or ``ok-or-fail``.
        stage: The failure stage expected (``scan``, ``read``, ``decode``) when it fails.
        reason: A lowercase substring of the expected failure reason.
        asset_kind: The asset's kind when it ingests.
        note: Why this is the right outcome.
    """

    kind: str
    path: Path
    expect: Expect
    stage: str | None = None
    reason: str | None = None
    asset_kind: str | None = None
    note: str = ""

    @property
    def uri(self) -> str:
        """The uri the store keeps for this path (file names that are not UTF-8 are escaped)."""
        return os.fsencode(self.path).decode("utf-8", "backslashreplace")


@dataclass
class Corpus:
    """The cases, the good files mixed in, and the file rewritten during the ingest."""

    root: Path
    cases: list[Case] = field(default_factory=list)
    good: list[Path] = field(default_factory=list)
    speech_video: Path | None = None
    changing: ChangingFile | None = None
    skipped: list[str] = field(default_factory=list)

    def add(self, case: Case) -> None:
        if any(c.kind == case.kind for c in self.cases):
            raise ValueError(f"duplicate case kind {case.kind}")
        self.cases.append(case)


# --- the bad corpus --------------------------------------------------------------------------


def build_bad_corpus(root: Path, *, unreadable: bool = True, speech: bool = True) -> Corpus:
    """Write the hostile corpus and the good files mixed into it under ``root``.

    Args:
        root: An empty folder (world-readable if the ingest runs as another user).
        unreadable: Add the unreadable file and folder (only meaningful when the ingest runs
            as a user the permissions apply to: root reads everything).
        speech: Add the good video with a speech track (needs espeak-ng).

    Returns:
        The corpus; start ``corpus.changing`` just before the ingest and stop it after.
    """
    corpus = Corpus(root)
    bad, names, fs = root / "bad", root / "names", root / "fs"
    for folder in (bad, names, fs):
        folder.mkdir(parents=True)
    _images(corpus, bad)
    _media(corpus, bad)
    _names(corpus, names)
    _filesystem(corpus, fs, unreadable)
    _good(corpus, root / "good", speech)
    return corpus


def _images(corpus: Corpus, d: Path) -> None:
    photo = (PHOTOS / "cat.jpg").read_bytes()
    png = encoded(noisy_image((300, 200), 1), "PNG")
    gif = encoded(noisy_image((200, 150), 2, "P"), "GIF")
    webp = encoded(noisy_image((300, 200), 3), "WEBP", quality=90)
    tiff = encoded(noisy_image((300, 200), 4), "TIFF")

    def case(kind: str, name: str, data: bytes, expect: Expect, reason: str | None = None, **kw: str) -> None:
        (d / name).write_bytes(data)
        stage = kw.pop("stage", "decode" if expect == "fail" else None)
        asset_kind = "image" if expect == "ok" else None
        corpus.add(Case(kind, d / name, expect, stage, reason, asset_kind, **kw))

    case("jpeg-truncated", "truncated.jpg", cut(photo, 0.5), "fail", "truncated")
    case("jpeg-corrupt-header", "corrupt-header.jpg", garble(photo, 20, 400, 1), "fail")
    case("jpeg-header-only", "header-only.jpg", photo[:600], "fail", "truncated")
    case("jpeg-garbage-scan", "garbage-scan.jpg", garble(photo, len(photo) // 2, 2000, 2), "fail",
         note="random bytes in the entropy-coded data: libjpeg gives up, no half picture")  # fmt: skip
    case("png-truncated", "truncated.png", cut(png, 0.5), "fail", "truncated")
    case("png-bad-crc", "bad-crc.png", png[:29] + b"\x00\x00\x00\x00" + png[33:], "fail",
         note="the IHDR checksum is wrong: the header cannot be trusted")  # fmt: skip
    case("png-corrupt-data", "corrupt-data.png", garble(png, 200, 2000, 3), "fail")
    case("gif-truncated", "truncated.gif", cut(gif, 0.4), "fail", "truncated")
    case("webp-truncated", "truncated.webp", cut(webp, 0.5), "fail")
    case("webp-corrupt", "corrupt.webp", garble(webp, 40, 2000, 4), "fail")
    case("tiff-truncated", "truncated.tiff", cut(tiff, 0.5), "fail", "truncated")
    case("tiff-bad-ifd", "bad-ifd.tif", tiff[:4] + struct.pack("<I", 0x7FFFFFF0) + tiff[8:], "fail")
    case("empty-jpeg", "empty.jpg", b"", "fail", "file is empty", stage="scan")
    case("text-named-jpeg", "text.jpg", b"this is not an image\n" * 20, "fail", "not a recognised",
         stage="scan")  # fmt: skip
    case("binary-noise-named-png", "noise.png", random.Random(5).randbytes(5000), "fail",
         "not a recognised", stage="scan")  # fmt: skip
    case("png-named-jpeg", "really-a-png.jpg", png, "ok", note="kind comes from the content")
    case("jpeg-named-mp4", "really-a-jpeg.mp4", photo, "ok", note="kind comes from the content")
    case("png-bomb-30000x30000", "bomb.png", png_bomb(30000, 30000), "fail", "too large",
         note="refused from the header, before any pixel is decoded")  # fmt: skip
    case("gif-huge-canvas", "huge-canvas.gif", gif_huge_canvas(), "fail", "too large")
    case("aspect-1x20000", "tall-1x20000.png", encoded(noisy_image((1, 20000), 6), "PNG"), "ok")
    case("aspect-20000x1", "wide-20000x1.png", encoded(noisy_image((20000, 1), 7), "PNG"), "ok")
    case("tiny-1x1-png", "one-pixel.png", encoded(Image.new("RGB", (1, 1), "red"), "PNG"), "ok")
    case("tiny-1x1-jpeg", "one-pixel.jpg", encoded(Image.new("RGB", (1, 1), "blue"), "JPEG"), "ok")
    case("cmyk-jpeg", "cmyk.jpg", encoded(noisy_image((200, 160), 8, "CMYK"), "JPEG"), "ok")
    gray16 = Image.fromarray((np.arange(200 * 160).reshape(160, 200) * 2).astype(np.uint16))
    case("gray-16bit-png", "gray16.png", encoded(gray16, "PNG"), "ok")
    case("gray-16bit-tiff", "gray16.tiff", encoded(gray16, "TIFF"), "ok")
    frames = [noisy_image((120, 90), 20 + i, "P") for i in range(3)]
    animated = io.BytesIO()
    frames[0].save(animated, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    case("gif-animated", "animated.gif", animated.getvalue(), "ok")
    rgba = noisy_image((200, 160), 9, "RGBA")
    case("png-transparent", "transparent.png", encoded(rgba, "PNG"), "ok")


def _media(corpus: Corpus, d: Path) -> None:
    clip = write_clip(d / ".src.mp4", 3.0, 100)  # moov at the end: a cut loses the index
    fast = write_clip(d / ".src.mov", 3.0, 200, options={"movflags": "faststart"})
    mp4, mov = clip.read_bytes(), fast.read_bytes()
    clip.unlink()
    fast.unlink()
    tone = 0.3 * np.sin(np.arange(SAMPLE_RATE) * 2 * np.pi * 440 / SAMPLE_RATE)

    def case(kind: str, name: str, data: bytes | None, expect: Expect, reason: str | None = None,
             asset_kind: str | None = None, stage: str | None = None, note: str = "") -> None:  # fmt: skip
        if data is not None:
            (d / name).write_bytes(data)
        stage = stage or ("decode" if expect == "fail" else None)
        corpus.add(Case(kind, d / name, expect, stage, reason, asset_kind, note))

    case("mp4-truncated", "truncated.mp4", cut(mp4, 0.6), "fail", "truncated",
         note="the moov index sits at the end and is gone")  # fmt: skip
    case("mov-truncated-faststart", "truncated.mov", cut(mov, 0.6), "ok", asset_kind="video",
         note="index first: the frames before the cut are a usable preview")  # fmt: skip
    case("mp4-header-only", "header-only.mp4", mp4[:32], "fail")
    case("mp4-garbage", "garbage.mp4", mp4[:32] + random.Random(9).randbytes(20000), "fail")
    write_frameless_video(d / "no-frames.mp4")
    case("video-no-frames", "no-frames.mp4", None, "fail", "no video or audio stream",
         note="FFmpeg drops a track without a single packet")  # fmt: skip
    case("mp4-empty", "empty.mp4", b"", "fail", "file is empty", stage="scan")
    case("wav-no-samples", "no-samples.wav", wav_bytes(np.zeros(0)), "ok", asset_kind="audio",
         note="a valid file holding no sound: an audio asset with an empty transcript")  # fmt: skip
    case("wav-claims-10h", "claims-10-hours.wav", wav_claiming(36000, wav_bytes(tone)[44:]), "ok",
         asset_kind="audio", note="1 s of tone; memory must not follow the header's claim")  # fmt: skip
    case("wav-claims-10h-no-data", "claims-10-hours-empty.wav", wav_claiming(36000, b""), "ok",
         asset_kind="audio")  # fmt: skip
    case("wav-truncated-mid-sample", "truncated.wav", wav_bytes(tone)[:-1001], "ok", asset_kind="audio")
    case("ogg-garbage", "garbage.ogg", b"OggS\x00" + random.Random(10).randbytes(4000), "fail")
    case("mp3-garbage", "garbage.mp3", b"ID3\x03\x00\x00\x00\x00\x00\x00" + random.Random(11).randbytes(4000),
         "fail")  # fmt: skip


def _names(corpus: Corpus, d: Path) -> None:
    image = encoded(noisy_image((64, 48), 30), "PNG")

    def ok(kind: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(image)
        corpus.add(Case(kind, path, "ok", asset_kind="image"))

    ok("name-unicode", d / "café 写真 ✓ 🎞.png")
    ok("name-spaces-and-quotes", d / "  spaced 'quoted' \"double\" .png")
    ok("name-newline-and-tab", d / "line\nbreak\ttab.png")
    ok("name-leading-dash", d / "-rf --json.png")
    ok("name-at-name-max", d / ("n" * (NAME_MAX - 4) + ".png"))
    # A file name that is not UTF-8 (Linux allows any bytes but '/' and NUL).
    latin1 = Path(os.fsdecode(bytes(d) + b"/caf\xe9-latin1.png"))
    latin1.write_bytes(image)
    corpus.add(
        Case("name-not-utf8", latin1, "fail", "scan", "not valid utf-8",
             note="it cannot be stored as text without losing the name: reported, never a crash")
    )  # fmt: skip
    # A path just under PATH_MAX, and one past it (only reachable folder by folder).
    near = d / "near"
    while (room := PATH_MAX - 1 - len(os.fsencode(near)) - 1) > NAME_MAX:
        near = near / ("p" * min(NAME_MAX, room - 1 - 16))  # leave at least 16 for the name
    ok("path-near-path-max", near / ("q" * (room - 4) + ".png"))
    assert len(os.fsencode(corpus.cases[-1].path)) == PATH_MAX - 1
    _past_path_max(corpus, d / "far", image)


def _past_path_max(corpus: Corpus, top: Path, image: bytes) -> None:
    """Folders nested past PATH_MAX, built with dir_fd since no path to the bottom is valid."""
    top.mkdir()
    fd = os.open(top, os.O_RDONLY)
    path, first_too_long = top, None
    try:
        for _ in range(20):
            os.mkdir("f" * 250, dir_fd=fd)
            fd, parent = os.open("f" * 250, os.O_RDONLY, dir_fd=fd), fd
            os.close(parent)
            path = path / ("f" * 250)
            if first_too_long is None and len(os.fsencode(path)) >= PATH_MAX:
                first_too_long = path
        out = os.open("deep.png", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(out, image)
        os.close(out)
    finally:
        os.close(fd)
    assert first_too_long is not None
    corpus.add(Case("path-past-path-max", first_too_long, "fail", "scan", "too long",
                    note="the folder whose path reaches PATH_MAX is reported; nothing below it"))  # fmt: skip


def _filesystem(corpus: Corpus, d: Path, unreadable: bool) -> None:
    image = encoded(noisy_image((64, 48), 40), "PNG")
    (d / "real.png").write_bytes(image)
    corpus.add(Case("plain-file-next-to-links", d / "real.png", "ok", asset_kind="image"))
    (d / "loop").mkdir()
    (d / "loop" / "inside.png").write_bytes(encoded(noisy_image((64, 48), 41), "PNG"))
    (d / "loop" / "again").symlink_to("..", target_is_directory=True)
    corpus.add(Case("symlink-folder-loop", d / "loop" / "again", "ignored",
                    note="a folder reached twice is walked once"))  # fmt: skip
    corpus.add(Case("file-inside-symlink-loop", d / "loop" / "inside.png", "ok", asset_kind="image"))
    (d / "self.jpg").symlink_to("self.jpg")
    corpus.add(Case("symlink-self-loop", d / "self.jpg", "fail", "scan", "symbolic link loop"))
    (d / "dangling.png").symlink_to("nowhere.png")
    corpus.add(Case("symlink-dangling", d / "dangling.png", "fail", "scan", "broken symbolic link"))
    os.mkfifo(d / "pipe.mp4")
    corpus.add(Case("fifo-named-mp4", d / "pipe.mp4", "ignored", note="opening a FIFO would block"))
    (d / ".hidden.jpg").write_bytes(image)
    corpus.add(Case("hidden-file", d / ".hidden.jpg", "ignored"))
    (d / "notes.txt").write_text("not media\n")
    corpus.add(Case("text-file", d / "notes.txt", "ignored"))
    if unreadable:
        locked = d / "locked.png"
        locked.write_bytes(image)
        locked.chmod(0)
        corpus.add(Case("unreadable-file", locked, "fail", "scan", "permission denied"))
        folder = d / "locked-folder"
        folder.mkdir()
        (folder / "inside.png").write_bytes(image)
        folder.chmod(0)
        corpus.add(Case("unreadable-folder", folder, "fail", "scan", "permission denied"))
    else:
        corpus.skipped += ["unreadable-file", "unreadable-folder"]
    versions = [
        encoded(noisy_image((400, 300), 50), "JPEG", quality=90),
        encoded(noisy_image((300, 300), 51), "PNG"),
        encoded(noisy_image((320, 240), 52), "JPEG", quality=80),
    ]
    corpus.changing = ChangingFile(d / "changing.jpg", versions)
    corpus.add(Case("file-rewritten-during-ingest", d / "changing.jpg", "ok-or-fail",
                    note="ingested as read, or failed with a reason; redone once settled"))  # fmt: skip


def _good(corpus: Corpus, d: Path, speech: bool) -> None:
    d.mkdir()
    for photo in sorted(PHOTOS.glob("*.jpg")):
        shutil.copy(photo, d / photo.name)
        corpus.good.append(d / photo.name)
    if speech:
        wav = speak(SPEECH, d.parent / "speech.wav", silence_before=0.5)
        scenes = [(2.0, Image.open(PHOTOS / "rocket.jpg")), (2.0, Image.open(PHOTOS / "coffee.jpg"))]
        corpus.speech_video = make_clip(d / "launch with speech.mp4", scenes, speech=wav)
        wav.unlink()
        corpus.good.append(corpus.speech_video)


def unlock(root: Path) -> None:
    """Undo the unreadable cases so the folder can be deleted."""
    for dirpath, dirnames, _ in os.walk(root):
        for name in dirnames:
            path = Path(dirpath) / name
            try:
                if not path.is_symlink() and stat.S_IMODE(path.lstat().st_mode) == 0:
                    path.chmod(0o755)
            except OSError:
                pass  # past PATH_MAX: only rmtree's fd-based walk gets there


# --- the small valid library -----------------------------------------------------------------


def build_library(root: Path, images: int = 60) -> list[Path]:
    """A small valid library: ``images`` small JPEG/PNG files, a silent clip and a clip with speech.

    Two of the images are exact copies of others (duplicates share vectors).

    Args:
        root: An empty folder.
        images: How many images.

    Returns:
        The files written, sorted.
    """
    root.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(images - 2):
        image = noisy_image((96 + (i % 5) * 16, 72 + (i % 3) * 16), 1000 + i)
        name = root / f"img-{i:03}.{'png' if i % 4 == 0 else 'jpg'}"
        image.save(name, quality=85) if name.suffix == ".jpg" else image.save(name)
        files.append(name)
    for copy, source in ((images - 2, 3), (images - 1, 10)):
        files.append(root / f"copy-{copy:03}{files[source].suffix}")
        shutil.copy(files[source], files[-1])
    files.append(write_clip(root / "silent.mp4", 2.0, 3000))
    wav = speak(SPEECH, root.parent / f"{root.name}-speech.wav")
    scenes = [(1.5, noisy_image((160, 120), 4000)), (1.5, noisy_image((160, 120), 4001))]
    files.append(make_clip(root / "voice.mp4", scenes, speech=wav, size=(160, 120), fps=10))
    wav.unlink()
    return sorted(files)
