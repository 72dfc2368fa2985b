"""Video and audio assets end to end: keyframes, tags per keyframe, transcripts, search."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import PHOTOS, ingester_for
from media import SAMPLE_RATE, make_clip, speak, write_wav
from PIL import Image

from assetlens.enrich.cli import cli
from assetlens.enrich.pipeline import IngestOptions
from assetlens.models.whisper import Transcriber
from assetlens.search.library import LibraryCore
from assetlens.search.query_types import open_query_image

SENTENCE = "Our spring collection features bright colours and light fabrics."

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    return Transcriber()


@pytest.fixture
def media(tmp_path: Path) -> Path:
    """A folder with a video (two scenes and a speech track), a voice-over and a silent file."""
    folder = tmp_path / "campaign"
    folder.mkdir()
    speech = speak(SENTENCE, tmp_path / "speech.wav", silence_before=1.0)
    cat, rocket = Image.open(PHOTOS / "cat.jpg"), Image.open(PHOTOS / "rocket.jpg")
    make_clip(folder / "spring teaser.mp4", [(3.0, cat), (3.0, rocket)], speech=speech)
    shutil.copy(speech, folder / "voice-over.wav")
    write_wav(folder / "room tone.wav", np.zeros(3 * SAMPLE_RATE), SAMPLE_RATE)
    return folder


def ingest(lib: LibraryCore, folder: Path, transcriber: Transcriber | None, **options: object) -> dict:
    ingester = ingester_for(lib)
    ingester.transcription = transcriber.settings if transcriber else None
    return ingester.ingest([folder], IngestOptions(**options)).as_dict()  # type: ignore[arg-type]


def test_video_keyframes_tags_poster_and_transcript(
    lib: LibraryCore, media: Path, transcriber: Transcriber
) -> None:
    report = ingest(lib, media, transcriber)

    assert report["added"] == 3 and report["failed"] == 0
    video = lib.store.asset_by_uri(str(media / "spring teaser.mp4"))
    assert video is not None and video.kind == "video"
    assert video.duration == pytest.approx(6.0, abs=0.2) and video.media["has_audio"] is True
    _, times = lib.store.vectors_of(video.id)
    assert any(t is not None and t < 1.0 for t in times) and any(
        t is not None and 3.0 <= t < 3.5 for t in times
    )
    assert video.poster_t in times
    assert all(t.t in times for t in lib.store.tags_of([video.id])[video.id])
    segments = lib.store.segments_of(video.id)
    assert segments and segments[0]["start"] >= 0.5 and "spring collection" in segments[0]["text"].lower()
    silent = lib.store.asset_by_uri(str(media / "room tone.wav"))
    assert silent is not None and silent.kind == "audio" and silent.transcript_model is not None
    assert lib.store.segments_of(silent.id) == []  # no speech: no hallucinated text


def test_search_finds_spoken_phrase_with_its_time(
    lib: LibraryCore, media: Path, transcriber: Transcriber
) -> None:
    ingest(lib, media, transcriber)

    results = lib.engine.search_text("spring collection", 10)

    assert results[0].match in ("transcript", "both") and results[0].segment is not None
    assert Path(results[0].uri).name in ("spring teaser.mp4", "voice-over.wav")
    assert {Path(r.uri).name for r in results[:2]} == {"spring teaser.mp4", "voice-over.wav"}
    assert results[0].t == pytest.approx(results[0].segment["start"]) and 0.5 <= results[0].t <= 2.0


def test_similar_to_a_keyframe_returns_the_video_with_its_time(
    lib: LibraryCore, media: Path, tmp_path: Path
) -> None:
    ingest(lib, media, None)
    rocket = Image.open(PHOTOS / "rocket.jpg")
    rocket.crop((20, 20, rocket.width - 20, rocket.height - 20)).save(tmp_path / "rocket-still.jpg")

    results = lib.engine.similar_to_image(open_query_image(tmp_path / "rocket-still.jpg"), 3)

    assert Path(results[0].uri).name == "spring teaser.mp4"
    assert results[0].t is not None and 3.0 <= results[0].t < 6.0


def test_no_transcribe_then_ingest_fills_transcripts_without_re_embedding(
    lib: LibraryCore, media: Path, transcriber: Transcriber
) -> None:
    first = ingest(lib, media, None, transcribe=False)
    video = lib.store.asset_by_uri(str(media / "spring teaser.mp4"))
    assert first["transcribed"] == 0 and video is not None and video.transcript_model is None
    vectors_before = lib.store.count_vectors()

    second = ingest(lib, media, transcriber)

    assert second["skipped"] == 3 and second["transcribed"] == 3  # the silent file gets an empty transcript
    assert lib.store.count_vectors() == vectors_before
    assert lib.store.segments_of(video.id)


def test_no_video_and_keyframe_cap(lib: LibraryCore, media: Path) -> None:
    skipped = ingest(lib, media, None, video=False, transcribe=False)
    assert skipped["excluded"] == 1 and lib.store.asset_by_uri(str(media / "spring teaser.mp4")) is None
    from assetlens.enrich.video import KeyframeOptions

    ingest(lib, media, None, transcribe=False, keyframes=KeyframeOptions(max_keyframes=1))
    video = lib.store.asset_by_uri(str(media / "spring teaser.mp4"))
    assert video is not None and len(lib.store.vectors_of(video.id)[1]) == 1


def test_sample_videos_ingest(lib: LibraryCore, tmp_path: Path) -> None:
    folder = tmp_path / "samples"
    shutil.copytree(PHOTOS.parent / "videos", folder)

    report = ingest(lib, folder, None, transcribe=False)

    assert report["failed"] == 0 and report["added"] == len(list(folder.glob("*.mp4")))


def test_transcript_formats_and_retranscribe_commands(tmp_path: Path, media: Path) -> None:
    data = tmp_path / "data"
    env = {"ASSETLENS_CLIP_MODEL": "tiny"}
    runner = CliRunner()
    assert (
        runner.invoke(
            cli, ["--data-dir", str(data), "ingest", str(media), "--no-transcribe"], env=env
        ).exit_code
        == 0
    )
    video = str(media / "spring teaser.mp4")
    missing = runner.invoke(cli, ["--data-dir", str(data), "transcript", video], env=env)
    assert missing.exit_code == 1 and "assetlens transcribe" in missing.output

    done = runner.invoke(cli, ["--data-dir", str(data), "transcribe", "--missing", "--json"], env=env)
    srt = runner.invoke(cli, ["--data-dir", str(data), "transcript", video, "--format", "srt"], env=env)
    vtt = runner.invoke(cli, ["--data-dir", str(data), "transcript", video, "--format", "vtt"], env=env)
    shown = runner.invoke(cli, ["--data-dir", str(data), "show", video, "--json"], env=env)

    assert done.exit_code == 0, done.output
    assert '"transcribed": 3' in done.output
    assert srt.output.startswith("1\n00:00:0") and " --> " in srt.output and "spring" in srt.output.lower()
    assert vtt.output.startswith("WEBVTT\n\n00:00:0")
    assert '"transcript": [' in shown.output and "spring" in shown.output.lower()
