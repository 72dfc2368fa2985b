"""Audio decoding for transcription: any audio or video file to mono float32 at 16 kHz.

:func:`iter_audio_chunks` decodes the first audio stream of a file with PyAV (FFmpeg's
libraries bundled in the wheel: no system ``ffmpeg`` needed), resamples it to what Whisper
expects and hands it out in chunks of about ``chunk_seconds``. A chunk is never cut at a
fixed sample count: the cut goes into the quietest half second shortly before the nominal
boundary, so a word is not split between two chunks (a split word is misheard twice).

Memory stays bounded by one chunk plus a short tail whatever the file's length: a
three-hour recording at 16 kHz is 690 MB of float32, ten minutes is 38 MB.

Works for WAV, MP3, M4A/AAC, FLAC, Ogg (Vorbis/Opus) and the audio track of video
containers (MP4, MOV, MKV, WebM...): whatever FFmpeg can demux and decode.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import av
import av.container
import numpy as np

from assetlens.enrich.errors import DecodeError
from assetlens.enrich.media_io import failure_reason, open_media

__all__ = ["SAMPLE_RATE", "DecodeError", "audio_duration", "iter_audio_chunks"]

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
"""Samples per second of every decoded chunk (what Whisper's feature extractor expects)."""

_CUT_WINDOW_S = 0.5
"""Length of the window whose energy decides where a chunk is cut."""
_CUT_SEARCH_S = 20.0
"""How far before the nominal boundary the cut may move (bounded to half a chunk)."""
_HOP = SAMPLE_RATE // 100
"""Samples per 10 ms energy frame when looking for a cut."""
_MAX_BAD_PACKETS = 100
"""Consecutive undecodable packets tolerated before the file counts as corrupt."""


def iter_audio_chunks(path: Path, chunk_seconds: float = 600.0) -> Iterator[tuple[float, np.ndarray]]:
    """Decode a file's first audio stream into mono 16 kHz float32 chunks.

    Each chunk ends at the quietest 0.5 s window among the last 20 s before its nominal
    length (the last half of the chunk when chunks are shorter than 40 s), cut in the
    middle of that window. Chunks are contiguous: concatenated, they are the whole decode.

    Damage policy: a truncated file yields what it holds (an MP3 or WAV cut short decodes
    up to the cut, as FFmpeg does); isolated undecodable packets in the middle are skipped
    with a warning, so one bad sector does not lose an hour of transcript. A file whose
    first packets cannot be decoded, or that fails 100 times in a row, raises
    :class:`DecodeError`; if that happens mid-file, the chunks already yielded stay valid.

    Args:
        path: Any audio file or video container with an audio track.
        chunk_seconds: Nominal chunk length in seconds.

    Yields:
        ``(offset, samples)``: the offset in seconds of the chunk's first sample, counted in
        decoded samples from the first one, and a 1-D ``float32`` array in ``[-1, 1]``.
        A file with an audio stream that holds no samples yields nothing.

    Raises:
        DecodeError: The file is missing, empty, not a media file, has no audio stream, or
            its audio data is corrupt.
        ValueError: ``chunk_seconds`` is not positive.
    """
    if not chunk_seconds > 0:
        raise ValueError(f"chunk_seconds must be positive, got {chunk_seconds}")
    path = Path(path)
    chunk_len = max(1, round(chunk_seconds * SAMPLE_RATE))
    container = open_media(path)
    try:
        stream = _first_audio_stream(container, path)
        # Frames are copied into one preallocated chunk buffer as they arrive: collecting
        # them in a list and concatenating would briefly need twice the chunk's memory.
        buf: np.ndarray | None = None
        tail = np.zeros(0, dtype=np.float32)  # audio after the last cut, carried over
        filled = 0
        consumed = 0  # samples already yielded: the next chunk's offset
        for samples in _decoded_samples(container, stream, path):
            pos = 0
            while pos < samples.size:
                if buf is None:
                    # Allocated only now, not before the previous yield: while the consumer
                    # works on a chunk, this generator holds nothing but the short tail.
                    buf = np.empty(chunk_len, dtype=np.float32)
                    buf[: tail.size] = tail
                    filled = tail.size
                take = min(chunk_len - filled, samples.size - pos)
                buf[filled : filled + take] = samples[pos : pos + take]
                filled += take
                pos += take
                if filled == chunk_len:
                    cut = _cut_point(buf)
                    tail = buf[cut:].copy()
                    chunk, buf = buf[:cut], None
                    yield consumed / SAMPLE_RATE, chunk
                    del chunk  # the consumer's reference is the only one left
                    consumed += cut
        if buf is not None and filled:
            yield consumed / SAMPLE_RATE, buf[:filled]
        elif tail.size:
            yield consumed / SAMPLE_RATE, tail
    finally:
        container.close()


def audio_duration(path: Path) -> float | None:
    """The duration of a file's first audio stream as its container declares it.

    Reads headers only (nothing is decoded), so the figure is what the file claims: a
    truncated file may claim more than :func:`iter_audio_chunks` delivers.

    Args:
        path: Any audio file or video container with an audio track.

    Returns:
        Seconds, or ``None`` when neither the stream nor the container states a duration
        (raw streams without an index, some live captures).

    Raises:
        DecodeError: The file cannot be opened as media or has no audio stream.
    """
    path = Path(path)
    container = open_media(path)
    try:
        stream = _first_audio_stream(container, path)
        if stream.duration is not None and stream.time_base is not None:
            return float(stream.duration * stream.time_base)
        if container.duration is not None:
            # The container-wide figure (in AV_TIME_BASE units) also covers video streams,
            # which is the best remaining guess for the audio track.
            return container.duration / av.time_base
        return None
    finally:
        container.close()


def _first_audio_stream(container: av.container.InputContainer, path: Path) -> av.AudioStream:
    if not container.streams.audio:
        raise DecodeError(path, "no audio stream")
    return container.streams.audio[0]


def _decoded_samples(
    container: av.container.InputContainer, stream: av.AudioStream, path: Path
) -> Iterator[np.ndarray]:
    """Demux and decode ``stream``, yielding resampled mono float32 blocks (never empty)."""
    # The resampler also downmixes (FFmpeg's standard matrix) and converts the sample format;
    # its filter graph is set up from the first frame, so mid-stream layout changes raise.
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    decoded_any = False
    bad_in_a_row = 0
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
            frames = packet.decode()
            bad_in_a_row = 0
        except StopIteration:
            break
        except Exception as exc:  # FFmpeg errors on a corrupt packet or while demuxing
            bad_in_a_row += 1
            if not decoded_any or bad_in_a_row >= _MAX_BAD_PACKETS:
                raise DecodeError(path, f"corrupt audio data ({_reason(exc)})") from exc
            log.warning("%s: skipping an undecodable audio packet (%s)", path, exc)
            continue
        for frame in frames:
            for block in _resample(resampler, frame, path):
                decoded_any = True
                yield block
    yield from _resample(resampler, None, path)  # flush the resampler's delay line


def _resample(resampler: av.AudioResampler, frame: av.AudioFrame | None, path: Path) -> Iterator[np.ndarray]:
    try:
        out = resampler.resample(frame)
    except Exception as exc:  # e.g. the channel layout changed mid-stream
        raise DecodeError(path, f"cannot resample the audio ({_reason(exc)})") from exc
    for resampled in out:
        samples = resampled.to_ndarray().reshape(-1)
        if samples.size:
            yield samples.astype(np.float32, copy=False)


def _cut_point(chunk: np.ndarray) -> int:
    """Index in ``chunk`` at which to end it: the middle of the quietest window near its end."""
    n = chunk.size
    # Energy per 10 ms frame, then a sliding sum over the window: precise enough for a cut
    # and far lighter than a per-sample running sum over up to 20 s of float64.
    search_frames = min(round(_CUT_SEARCH_S * 100), n // 2 // _HOP)
    window = min(round(_CUT_WINDOW_S * 100), search_frames)
    if window < 1:
        return n
    start = n - search_frames * _HOP
    frames = chunk[start:].reshape(search_frames, _HOP)
    energy = np.concatenate(([0.0], np.cumsum(np.einsum("ij,ij->i", frames, frames), dtype=np.float64)))
    sums = energy[window:] - energy[:-window]
    # Among equally quiet windows (digital silence) take the latest: chunks stay near nominal.
    quietest = sums.size - 1 - int(np.argmin(sums[::-1]))
    return start + (quietest * _HOP) + (window * _HOP) // 2


def _reason(exc: BaseException) -> str:
    """A short human-readable cause for a failure while decoding or resampling."""
    if isinstance(exc, MemoryError):
        return "out of memory while decoding the audio"
    return failure_reason(exc)
