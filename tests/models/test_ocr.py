"""OCR engine (models/ocr.py): real RapidOCR models on real photos with text drawn by Pillow."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from ocr_support import char_error_rate, overlaps, photos, render, rendered_set, text_free_set
from PIL import Image

from assetlens.models.errors import OcrError
from assetlens.models.ocr import RAPIDOCR_VERSION, OcrLine, TextReader
from assetlens.models.scripts import in_scripts, parse_langs, script_of
from assetlens.models.settings import OcrSettings


@pytest.fixture(scope="module")
def reader() -> TextReader:
    r = TextReader(OcrSettings(ocr="on", ocr_langs="latin"))
    r.load()
    return r


@pytest.fixture(scope="module")
def rendered(reader: TextReader) -> list[tuple[str, float, float, bool]]:
    """(name, CER, angle, gate) per rendered picture: the lines read where the phrase was drawn."""
    out = []
    for pic in rendered_set():
        assert pic.height >= 24, pic.name
        lines = reader.read(pic.image)
        found = " ".join(line.text for line in lines if overlaps(line.box, pic.box))
        out.append(
            (pic.name, char_error_rate(pic.text, found), "angle 10" in pic.name, reader.has_text(pic.image))
        )
    return out


@pytest.mark.slow
def test_text_drawn_on_photos_is_read_with_a_low_character_error_rate(rendered) -> None:
    cers = [cer for _, cer, _, _ in rendered]
    assert sum(cers) / len(cers) <= 0.05, [(n, c) for n, c, _, _ in rendered if c > 0]
    tilted = [cer for _, cer, angle, _ in rendered if angle]
    assert len(tilted) >= 10 and sum(tilted) / len(tilted) <= 0.05
    # No single picture is lost outright: every phrase is found where it was drawn.
    assert max(cers) < 0.5, [(n, c) for n, c, _, _ in rendered if c >= 0.5]


@pytest.mark.slow
def test_text_free_photos_get_no_text(reader: TextReader) -> None:
    pictures = text_free_set()
    with_text = [(i, reader.read(im)) for i, im in enumerate(pictures)]
    with_text = [(i, lines) for i, lines in with_text if lines]
    assert len(pictures) >= 30
    assert len(with_text) <= 0.05 * len(pictures), with_text


@pytest.mark.slow
def test_the_gate_flags_pictures_with_text_and_passes_over_text_free_ones(reader, rendered) -> None:
    # The default gate (256 px) sees lines down to ~3% of the long side: most of the set, whose
    # smallest lines are 24 px on 1024; at 320 px it sees them all.
    flagged = [gate for *_, gate in rendered]
    assert sum(flagged) >= 0.8 * len(flagged)
    finer = TextReader(OcrSettings(ocr_gate_side=320))
    assert sum(bool(finer.find_text(pic.image)) for pic in rendered_set()) >= 0.95 * len(flagged)
    quiet = [reader.has_text(im) for im in text_free_set()]
    assert sum(quiet) <= 0.1 * len(quiet)


def test_reading_only_around_the_gate_boxes_finds_the_same_line(reader) -> None:
    import random

    pic = render(
        photos(("motorcycle",))["motorcycle"],
        "Grand opening Saturday",
        size=60,
        colour=(250, 210, 40),
        background="band",
        rng=random.Random(7),
    )
    regions = reader.find_text(pic.image)
    assert regions and all(overlaps(r, pic.box) for r in regions if r[3] - r[1] > 0.03)
    whole = [x for x in reader.read(pic.image) if overlaps(x.box, pic.box)]
    (around,) = [x for x in reader.read(pic.image, regions) if overlaps(x.box, pic.box)]
    assert [x.text for x in whole] == [around.text] == ["Grand opening Saturday"]
    # The box is mapped back from the crop to the whole picture.
    assert all(abs(a - b) < 0.01 for a, b in zip(around.box, whole[0].box, strict=True))
    assert reader.read(pic.image, ()) == ()


def test_a_line_carries_a_normalised_box_around_the_drawn_text_and_its_confidence(reader) -> None:
    import random

    pic = render(
        photos(("cat",))["cat"],
        "HARVEST MARKET",
        size=60,
        colour=(255, 255, 255),
        background="band",
        rng=random.Random(1),
    )
    (line,) = reader.read(pic.image)
    assert isinstance(line, OcrLine) and line.text == "HARVEST MARKET"
    assert 0.8 <= line.confidence <= 1.0
    x0, y0, x1, y1 = line.box
    assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
    # The box hugs the drawn phrase: it lies inside the drawn label, and covers most of it.
    bx0, by0, bx1, by1 = pic.box
    assert bx0 - 0.02 <= x0 and x1 <= bx1 + 0.02 and by0 - 0.02 <= y0 and y1 <= by1 + 0.02
    assert (x1 - x0) >= 0.7 * (bx1 - bx0)
    # The same picture as a uint8 array reads the same.
    assert reader.read(np.asarray(pic.image)) == (line,)


def test_lines_below_the_confidence_threshold_are_dropped() -> None:
    import random

    pic = render(
        photos(("rocket",))["rocket"],
        "Summer Sale",
        size=44,
        colour=(20, 20, 20),
        background="label",
        rng=random.Random(2),
    )
    lenient = TextReader(OcrSettings(ocr_min_confidence=0.0)).read(pic.image)
    assert any(line.text == "Summer Sale" for line in lenient)
    best = max(line.confidence for line in lenient)
    strict = TextReader(OcrSettings(ocr_min_confidence=min(1.0, best + 0.0001))).read(pic.image)
    assert strict == ()


def test_lines_in_scripts_outside_the_configured_languages_are_dropped() -> None:
    import random

    pic = render(
        photos(("coffee",))["coffee"],
        "Fresh roasted 2025",
        size=60,
        colour=(250, 250, 250),
        background="band",
        rng=random.Random(3),
    )
    assert [line.text for line in TextReader(OcrSettings(ocr_langs="en")).read(pic.image)] == [
        "Fresh roasted 2025"
    ]
    # Greek only: a Latin line goes; a line of digits alone belongs to every script.
    assert TextReader(OcrSettings(ocr_langs="greek")).read(pic.image) == ()
    digits = render(
        photos(("coffee",))["coffee"],
        "48213 2025",
        size=60,
        colour=(250, 250, 250),
        background="band",
        rng=random.Random(3),
    )
    assert [line.text for line in TextReader(OcrSettings(ocr_langs="el")).read(digits.image)] == [
        "48213 2025"
    ]


def test_scripts_of_letters_and_lines() -> None:
    assert [script_of(c) for c in "aÉ7Ωж東カ한-"] == [
        "latin",
        "latin",
        None,
        "greek",
        "cyrillic",
        "cjk",
        "cjk",
        "cjk",
        None,
    ]
    latin = parse_langs("latin")
    assert in_scripts("Café 25%", latin) and in_scripts("2025 -- 48", latin)
    assert not in_scripts("東京タワー", latin) and not in_scripts("3的", latin)
    assert parse_langs("en, de ja") == {"latin", "cjk"}
    assert parse_langs("LATIN greek") == {"latin", "greek"}


@pytest.mark.parametrize("value", ["klingon", "", " , "])
def test_unknown_or_empty_languages_are_refused_with_the_valid_names(value: str) -> None:
    with pytest.raises(OcrError, match="ASSETLENS_OCR_LANGS") as info:
        TextReader(OcrSettings(ocr_langs=value))
    if value.strip(" ,"):
        assert "latin" in str(info.value) and repr(value) in str(info.value)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSETLENS_OCR", "off")
    monkeypatch.setenv("ASSETLENS_OCR_LANGS", "latin,greek")
    monkeypatch.setenv("ASSETLENS_OCR_MIN_CONFIDENCE", "0.9")
    s = OcrSettings()
    assert (s.ocr, s.ocr_langs, s.ocr_min_confidence) == ("off", "latin,greek", 0.9)
    monkeypatch.setenv("ASSETLENS_OCR", "sometimes")
    with pytest.raises(ValueError, match="ocr"):
        OcrSettings()


def test_model_id_and_cache_key() -> None:
    a = TextReader(OcrSettings())
    assert a.model_id == f"rapidocr-{RAPIDOCR_VERSION}:PP-OCRv6_det_small+PP-OCRv6_rec_small"
    assert a.cache_key.startswith(a.model_id + "#")
    assert TextReader(OcrSettings()).cache_key == a.cache_key
    assert TextReader(OcrSettings(ocr_langs="latin,cjk")).cache_key != a.cache_key
    assert TextReader(OcrSettings(ocr_min_confidence=0.5)).cache_key != a.cache_key
    # The gate does not change which lines a read returns, so it is not part of the key.
    assert TextReader(OcrSettings(ocr_gate_side=512)).cache_key == a.cache_key
    assert not a.loaded


@pytest.mark.parametrize(
    "picture",
    [
        Image.new("RGB", (1, 1)),
        Image.new("RGB", (4000, 3)),
        Image.new("L", (64, 64), 255),
        Image.new("RGBA", (80, 40)),
        np.zeros((3, 3, 3), np.uint8),
    ],
    ids=["1px", "strip", "grey", "rgba", "array"],
)
def test_odd_pictures_give_no_text_and_no_error(reader: TextReader, picture) -> None:
    assert reader.read(picture) == ()
    assert reader.has_text(picture) is False


@pytest.mark.parametrize(
    "array", [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 3), np.float32), np.zeros((8, 8, 4), np.uint8)]
)
def test_arrays_that_are_not_rgb_uint8_are_refused(reader: TextReader, array: np.ndarray) -> None:
    with pytest.raises(OcrError, match="RGB uint8"):
        reader.read(array)


def test_importing_the_wrapper_loads_no_engine() -> None:
    code = "import sys, assetlens.models.ocr; print('rapidocr' in sys.modules, 'cv2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_without_the_engine_package_loading_fails_with_the_fix() -> None:
    code = (
        "import sys; sys.modules['rapidocr'] = None\n"
        "from assetlens.models.ocr import TextReader\n"
        "try:\n    TextReader().load()\nexcept Exception as exc:\n    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert (
        out.startswith("OcrError") and "pip install 'rapidocr==3.10.0'" in out and "ASSETLENS_OCR=off" in out
    )
