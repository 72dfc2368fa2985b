"""Video probing and keyframe extraction with PyAV (FFmpeg bundled in the wheel).

:func:`probe_media` reads what a DAM shows about a media file. :func:`extract_keyframes`
picks a few representative frames for CLIP in one streaming pass with bounded memory: the
chosen keyframes (already reduced to ``min_side``), at most two decoded frames (a scene start
waiting to settle; the least-bad frame while nothing good was seen), two analysis frames'
features and the first 90 compressed packets (read ahead to judge frame-rate regularity).
How frames are measured and chosen (scene measure, quality, selection) is described in
:mod:`enrich.keyframes`; this module demuxes, decodes and probes.

**Decoding.** The full path skips only non-reference frames (``skip_frame="NONREF"``:
B-frames no other frame predicts from; intra-only codecs lose none), which leaves several
frames a second and saves up to half the decoding. Videos longer than ``fast_path_after`` s
(10 min by default) take the fast path: only intra frames are decoded (``"NONKEY"``,
typically one every 1-10 s), several times faster again, and each is analysed under the same
rules. Cuts then show at the next intra frame, and motion between two intra frames reads as
change, so busy footage gets more keyframes.

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
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.container
import numpy as np

from assetlens.enrich.errors import DecodeError
from assetlens.enrich.keyframes import Keyframe, KeyframeOptions, KeyframeSelector
from assetlens.enrich.media_io import open_media

__all__ = ["DecodeError", "Keyframe", "KeyframeOptions", "MediaProbe", "extract_keyframes", "probe_media"]

log = logging.getLogger(__name__)

_SNIFF_PACKETS = 90  # packets read ahead (kept for decoding) to judge frame-rate regularity
_MAX_BAD_PACKETS = 100  # undecodable packets in a row before giving up on the rest
_DATE_TAGS = ("com.apple.quicktime.creationdate", "creation_time")
# Muxers without a clock write their epoch (Unix or QuickTime) rather than nothing.
_NO_DATE = (datetime(1970, 1, 1).date(), datetime(1904, 1, 1).date())
_DEFAULT_OPTIONS = KeyframeOptions()  # frozen: safe to share as the default argument


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
    with _opened(path) as container:
        stream = _video_stream(container)
        if stream is None:
            return _probe(container, None, 0, False)
        sniffed, _ = _sniff(container, stream)
        rotation = _tag_rotation(stream)
        # An undecodable start still has a readable header: keep the tag's rotation then.
        with contextlib.suppress(Exception):
            rotation = _frame_rotation(next(f for p in sniffed for f in p.decode()), rotation)
        return _probe(container, stream, rotation, _irregular(sniffed))


def extract_keyframes(
    path: Path, options: KeyframeOptions = _DEFAULT_OPTIONS
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
    with _opened(path) as container:
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
        selector: KeyframeSelector | None = None
        t = -step
        for frame in _frames(path, stream, sniffed, rest):
            if selector is None:
                sar = stream.sample_aspect_ratio or Fraction(1)
                selector = KeyframeSelector(options, fast, sar, _frame_rotation(frame, _tag_rotation(stream)))
            t = max(0.0, frame.time - start) if frame.time is not None else t + step
            selector.feed(frame, t)
        if selector is None:
            raise DecodeError(path, "video stream has no decodable frames")
        probe = _probe(container, stream, selector.rotation, _irregular(sniffed))
        # The container's duration spans every stream: a sound track that outlasts the
        # picture is not a truncated video, so the video stream's own length decides.
        span = _stream_duration(stream) or duration
        if span and t < 0.9 * span - 1.0:
            log.warning("%s: video decodes only to %.1f s of %.1f s (truncated?)", path, t, span)
        keyframes = selector.finish()
        return probe, keyframes


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[av.container.InputContainer]:
    """The open container; any failure inside becomes a :class:`DecodeError` for ``path``."""
    container = open_media(path)
    try:
        yield container
    except DecodeError:
        raise
    except Exception as exc:  # MemoryError included: one bad file must not end a batch
        raise DecodeError(path, f"cannot decode video ({type(exc).__name__}: {exc})") from exc
    finally:
        container.close()


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
    return _stream_duration(stream)


def _stream_duration(stream: av.VideoStream | None) -> float | None:
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
        # The codec's name, not the decoder's ("av1", not "libdav1d"; "mp3", not "mp3float").
        video_codec=stream.codec.canonical_name if stream is not None else None,
        audio_codec=audio.codec.canonical_name if audio is not None else None,
        rotation=rotation,
        variable_frame_rate=vfr,
        created=_created(container, stream),
    )
