"""Audio decoding with PyAV: formats, chunking at quiet points, bounded memory, damaged files."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import av
import numpy as np
import pytest
from media import read_wav, sentences_wav, write_wav

from assetlens.enrich.audio import SAMPLE_RATE, audio_duration, iter_audio_chunks
from assetlens.enrich.errors import DecodeError

SENTENCES = (
    "Our spring collection features bright colors and light fabrics.",
    "The red sneaker is available in every store from Monday.",
    "Please approve the new banner before the campaign launches next week.",
)


def encode(samples: np.ndarray, rate: int, path: Path, codec: str, *, video: bool = False) -> Path:
    """Encode mono float samples with PyAV (optionally muxed with a small video stream)."""
    with av.open(str(path), "w") as out:
        vstream = None
        if video:
            vstream = out.add_stream("mpeg4", rate=10)
            vstream.width, vstream.height, vstream.pix_fmt = 64, 48, "yuv420p"
        # Opus only runs at 48 kHz; the resampler below converts.
        stream_rate = 48_000 if codec == "libopus" else rate
        astream = out.add_stream(codec, rate=stream_rate, layout="mono")
        fmt = astream.codec_context.codec.audio_formats[0].name
        resampler = av.AudioResampler(
            format=fmt, layout="mono", rate=stream_rate, frame_size=astream.codec_context.frame_size or None
        )
        pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
        for i in range(0, pcm.size, 4096):
            frame = av.AudioFrame.from_ndarray(pcm[None, i : i + 4096], format="s16", layout="mono")
            frame.sample_rate, frame.pts = rate, i
            for resampled in resampler.resample(frame):
                out.mux(astream.encode(resampled))
        for resampled in resampler.resample(None):
            out.mux(astream.encode(resampled))
        out.mux(astream.encode(None))
        if vstream is not None:
            for i in range(round(pcm.size / rate * 10)):
                image = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i % 256, np.uint8), format="rgb24")
                image.pts = i
                out.mux(vstream.encode(image))
            out.mux(vstream.encode(None))
    return path


def decode_all(path: Path, chunk_seconds: float = 600.0) -> np.ndarray:
    return np.concatenate([samples for _, samples in iter_audio_chunks(path, chunk_seconds)])


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 13 s of espeak speech: three sentences with 0.8 s pauses, 22.05 kHz mono WAV."""
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    sentences_wav(SENTENCES, path)
    return path


def test_wav_decodes_to_mono_float32_16k(speech: Path) -> None:
    source, rate = read_wav(speech)
    chunks = list(iter_audio_chunks(speech))
    assert len(chunks) == 1
    offset, samples = chunks[0]
    assert offset == 0.0
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert abs(samples.size / SAMPLE_RATE - source.size / rate) < 0.01
    assert 0.05 < float(np.abs(samples).max()) <= 1.0
    duration = audio_duration(speech)
    assert duration is not None and abs(duration - source.size / rate) < 0.01


def test_small_chunks_concatenate_to_the_whole_decode(speech: Path) -> None:
    whole = decode_all(speech)
    chunks = list(iter_audio_chunks(speech, chunk_seconds=4.0))
    assert len(chunks) >= 3
    expected_offset = 0
    for offset, samples in chunks:
        assert offset == pytest.approx(expected_offset / SAMPLE_RATE)
        expected_offset += samples.size
    for _, samples in chunks[:-1]:
        # The cut moves back at most half a chunk from the 4 s boundary.
        assert 2.0 * SAMPLE_RATE <= samples.size <= 4.0 * SAMPLE_RATE
    np.testing.assert_array_equal(np.concatenate([s for _, s in chunks]), whole)


def test_chunk_is_cut_in_the_quietest_half_second_before_the_boundary(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    loud = rng.normal(0, 0.2, 8 * SAMPLE_RATE).astype(np.float32)
    loud[1 * SAMPLE_RATE : int(1.5 * SAMPLE_RATE)] = 0  # quieter, but outside the search region
    loud[int(3.0 * SAMPLE_RATE) : int(3.5 * SAMPLE_RATE)] *= 0.05  # the gap to find
    path = write_wav(tmp_path / "gap.wav", loud, SAMPLE_RATE)
    chunks = list(iter_audio_chunks(path, chunk_seconds=4.0))
    first = chunks[0][1].size / SAMPLE_RATE
    assert first == pytest.approx(3.25, abs=0.02)  # the middle of the gap
    assert chunks[1][0] == pytest.approx(first)


def test_speech_chunks_are_cut_in_quiet_places(speech: Path) -> None:
    whole = decode_all(speech)
    quarter = SAMPLE_RATE // 4
    window_rms = [
        float(np.sqrt(np.mean(whole[i : i + 2 * quarter] ** 2)))
        for i in range(0, whole.size - 2 * quarter, quarter)
    ]
    cut = 0
    for _, samples in list(iter_audio_chunks(speech, chunk_seconds=4.0))[:-1]:
        cut += samples.size
        around = whole[cut - quarter : cut + quarter]
        # Measured: each cut's half second is in the quietest ~25% of the file (espeak leaves
        # few gaps between words, and only 2 s before each boundary are searched at 4 s chunks).
        assert float(np.sqrt(np.mean(around**2))) <= np.percentile(window_rms, 40)


def test_cut_in_silence_keeps_chunks_near_nominal_length(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "zeros.wav", np.zeros(10 * SAMPLE_RATE, np.float32), SAMPLE_RATE)
    sizes = [samples.size for _, samples in iter_audio_chunks(path, chunk_seconds=4.0)]
    assert sum(sizes) == 10 * SAMPLE_RATE
    # Among equally quiet windows the latest wins, so chunks lose only half a window.
    assert all(3.7 * SAMPLE_RATE <= size <= 4.0 * SAMPLE_RATE for size in sizes[:-1])


def test_memory_stays_bounded_by_about_one_chunk(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    seconds, chunk = 300, 10.0
    noise = rng.normal(0, 0.1, seconds * SAMPLE_RATE).astype(np.float32)
    path = write_wav(tmp_path / "long.wav", noise, SAMPLE_RATE)
    del noise
    tracemalloc.start()
    try:
        total = 0
        for _, samples in iter_audio_chunks(path, chunk_seconds=chunk):
            total += samples.size
            del samples  # the consumer keeps nothing, as a transcriber would
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == seconds * SAMPLE_RATE
    whole_bytes = total * 4
    chunk_bytes = chunk * SAMPLE_RATE * 4
    # One chunk buffer, the decoder's current frame, the short tail and the cut search.
    assert peak < 2 * chunk_bytes < whole_bytes / 10, f"peak {peak / 1e6:.1f} MB"


FORMATS = [
    ("mp3", "libmp3lame", False),
    ("m4a", "aac", False),
    ("flac", "flac", False),
    ("ogg", "libopus", False),
    ("mp4", "aac", True),
    ("mkv", "libopus", True),
]


@pytest.mark.parametrize(("suffix", "codec", "video"), FORMATS, ids=[f[0] for f in FORMATS])
def test_formats_decode_to_the_same_audio(
    speech: Path, tmp_path: Path, suffix: str, codec: str, video: bool
) -> None:
    source, rate = read_wav(speech)
    path = encode(source, rate, tmp_path / f"speech.{suffix}", codec, video=video)
    if video:
        with av.open(str(path)) as container:
            assert container.streams.video and container.streams.audio
    reference = decode_all(speech)
    decoded = decode_all(path)
    # Codec priming/padding adds or trims a few tens of milliseconds at most.
    assert abs(decoded.size - reference.size) / SAMPLE_RATE < 0.1
    rms = lambda x: float(np.sqrt(np.mean(x**2)))  # noqa: E731
    assert rms(decoded) == pytest.approx(rms(reference), rel=0.15)
    duration = audio_duration(path)
    assert duration is not None and abs(duration - source.size / rate) < 0.1


def test_stereo_44k_is_downmixed_and_resampled(speech: Path, tmp_path: Path) -> None:
    source, rate = read_wav(speech)
    positions = np.arange(round(source.size * 44_100 / rate)) * rate / 44_100
    mono44 = np.interp(positions, np.arange(source.size), source).astype(np.float32)
    stereo = np.stack([mono44, mono44], axis=1).reshape(-1)
    path = write_wav(tmp_path / "stereo.wav", stereo, 44_100, channels=2)
    decoded = decode_all(path)
    assert abs(decoded.size - decode_all(speech).size) <= 2


def test_empty_file_is_a_decode_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.touch()
    with pytest.raises(DecodeError) as info:
        list(iter_audio_chunks(path))
    assert info.value.reason == "empty file (0 bytes)" and info.value.path == path
    with pytest.raises(DecodeError):
        audio_duration(path)


def test_text_file_named_wav_is_a_decode_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("These are meeting notes, not audio.\n" * 50)
    with pytest.raises(DecodeError, match="not a media file"):
        list(iter_audio_chunks(path))


def test_missing_file_is_a_decode_error(tmp_path: Path) -> None:
    with pytest.raises(DecodeError, match="file not found"):
        list(iter_audio_chunks(tmp_path / "absent.mp3"))


def test_video_without_audio_has_no_audio_stream(tmp_path: Path) -> None:
    path = tmp_path / "silent-film.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(10):
            image = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            image.pts = i
            out.mux(stream.encode(image))
        out.mux(stream.encode(None))
    with pytest.raises(DecodeError) as info:
        list(iter_audio_chunks(path))
    assert info.value.reason == "no audio stream"
    with pytest.raises(DecodeError, match="no audio stream"):
        audio_duration(path)


def test_audio_stream_without_samples_yields_nothing(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "nothing.wav", np.zeros(0, np.float32), SAMPLE_RATE)
    assert list(iter_audio_chunks(path)) == []
    assert audio_duration(path) in (0.0, None)


def test_truncated_mp3_decodes_what_it_holds(speech: Path, tmp_path: Path) -> None:
    # Decision: MP3 frames stand alone, so a file cut short gives the audio before the cut
    # (as FFmpeg does) rather than an error: a transcript of most of a recording beats none.
    source, rate = read_wav(speech)
    full = encode(source, rate, tmp_path / "full.mp3", "libmp3lame")
    data = full.read_bytes()
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(data[: len(data) // 2])
    decoded = decode_all(cut)
    assert 0.4 < decoded.size / decode_all(full).size < 0.6


def test_truncated_m4a_without_index_fails_clearly(speech: Path, tmp_path: Path) -> None:
    # MP4/M4A written in one pass keep their index (moov) at the end: cut short, nothing is
    # locatable, so this one is an error that says so.
    source, rate = read_wav(speech)
    data = encode(source, rate, tmp_path / "full.m4a", "aac").read_bytes()
    cut = tmp_path / "cut.m4a"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DecodeError, match="truncated"):
        list(iter_audio_chunks(cut))


def test_chunk_seconds_must_be_positive(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "a.wav", np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)
    with pytest.raises(ValueError, match="chunk_seconds"):
        next(iter_audio_chunks(path, chunk_seconds=0))
