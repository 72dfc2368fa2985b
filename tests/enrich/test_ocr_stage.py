"""The OCR stage (enrich/ocr.py): real files, the real decoder and keyframe extractor, the real model."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from ocr_support import SLIDE_END, SLIDE_START, SLIDE_TEXT, photos, render, slide_video

from assetlens.enrich.decode import decode_image
from assetlens.enrich.errors import DecodeError
from assetlens.enrich.keyframes import KeyframeOptions
from assetlens.enrich.ocr import TextStage, merge_repeats
from assetlens.enrich.video import extract_keyframes
from assetlens.models.ocr import TextReader
from assetlens.models.settings import OcrSettings
from assetlens.search.store import TextLine


@pytest.fixture(scope="module")
def reader() -> TextReader:
    return TextReader(OcrSettings())


def banner_file(folder: Path, size: tuple[int, int] = (4000, 3000), text: str = "25% off all shoes") -> Path:
    """A camera-size JPEG with a banner whose text is ~4% of the picture high."""
    pic = render(photos(("coffee",))["coffee"], text, size=int(size[1] * 0.055), colour=(250, 250, 250),
                 background="band", rng=random.Random(3), long_side=max(size))  # fmt: skip
    path = folder / "banner shot ü.jpg"
    pic.image.resize(size).save(path, quality=90)
    return path


def draft_of(path: Path) -> tuple:
    decoded = decode_image(path, min_side=224)
    return decoded.image, (decoded.metadata.width, decoded.metadata.height)


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_an_image_with_a_banner_gets_its_line(reader: TextReader, tmp_path: Path, mode: str) -> None:
    path = banner_file(tmp_path)
    draft, full = draft_of(path)
    assert max(draft.size) < 1000  # the draft is a reduced decode of the 4000 px file
    (line,) = TextStage(reader, mode).image(path, draft, full)
    assert line.text == "25% off all shoes" and line.t is None and line.model == reader.model_id
    assert 0 <= line.box[0] < line.box[2] <= 1 and 0 <= line.box[1] < line.box[3] <= 1


def test_auto_passes_over_text_free_photos_without_reading(tmp_path: Path) -> None:
    reader = TextReader(OcrSettings())
    stage = TextStage(reader, "auto")
    for name, im in photos(("cat", "rocket", "astronaut")).items():
        path = tmp_path / f"{name}.jpg"
        im.save(path)
        assert stage.image(path, *draft_of(path)) == ()
    assert not reader.loaded  # the recogniser was never needed: only the gate's detector ran


def test_small_text_needs_the_full_resolution_read(reader: TextReader, tmp_path: Path) -> None:
    # Text 0.8% of the picture high: invisible in a 256 px gate, legible in the file.
    rocket = photos(("rocket",))["rocket"]
    pic = render(rocket, "SKU 48213-B", size=48, colour=(20, 20, 20), background="label",
                 rng=random.Random(4), long_side=4000)  # fmt: skip
    path = tmp_path / "small.jpg"
    pic.image.save(path, quality=92)
    draft, full = draft_of(path)
    assert TextStage(reader, "auto").image(path, draft, full) == ()
    assert [x.text for x in TextStage(reader, "on").image(path, draft, full)] == ["SKU 48213-B"]


def test_a_file_that_changed_into_garbage_before_the_second_decode_fails_clearly(
    reader: TextReader, tmp_path: Path
) -> None:
    path = banner_file(tmp_path)
    draft, full = draft_of(path)
    path.write_bytes(path.read_bytes()[:5000])  # truncated after the first decode
    with pytest.raises(DecodeError, match=r"truncated|broken|corrupt"):
        TextStage(reader, "on").image(path, draft, full)


def test_a_text_slide_in_a_video_is_found_at_the_slides_time(reader: TextReader, tmp_path: Path) -> None:
    video = slide_video(tmp_path / "talk.mp4")
    _, keyframes = extract_keyframes(video, KeyframeOptions(min_side=360, min_gap=0.5))
    assert len(keyframes) >= 3
    for mode in ("auto", "on"):
        (line,) = TextStage(reader, mode).frames([(k.image, k.t) for k in keyframes])
        assert line.text == SLIDE_TEXT and SLIDE_START <= line.t < SLIDE_END


def test_text_held_over_several_keyframes_is_one_line_at_its_first_time(reader: TextReader) -> None:
    from ocr_support import slide

    picture = slide()
    frames = [(picture, 2.0), (picture, 4.0), (photos(("cat",))["cat"], 6.0), (picture, 8.0)]
    (line,) = TextStage(reader, "on").frames(frames)
    assert line.text == SLIDE_TEXT and line.t == 2.0


def test_merge_repeats_keeps_the_best_reading_at_the_earliest_time() -> None:
    lines = [
        TextLine("SPRlNG SALE", (0.1, 0.1, 0.5, 0.2), 0.81, 10.0, "m"),
        TextLine("Spring Sale", (0.1, 0.1, 0.5, 0.2), 0.97, 12.0, "m"),
        TextLine("spring  sale!", (0.1, 0.1, 0.5, 0.2), 0.90, 4.0, "m"),
        TextLine("Exit B2", (0.7, 0.8, 0.9, 0.9), 0.95, 6.0, "m"),
        TextLine("Exit B3", (0.7, 0.8, 0.9, 0.9), 0.95, 7.0, "m"),  # a different sign: kept
    ]
    merged = merge_repeats(lines)
    assert [(x.text, x.t, x.confidence) for x in merged] == [
        ("Spring Sale", 4.0, 0.97),
        ("Exit B2", 6.0, 0.95),
        ("Exit B3", 7.0, 0.95),
    ]
    assert merge_repeats([]) == ()


def test_off_is_not_a_reading_mode(reader: TextReader) -> None:
    with pytest.raises(ValueError, match="off"):
        TextStage(reader, "off")
    assert TextStage(TextReader(OcrSettings(ocr="on"))).mode == "on"
