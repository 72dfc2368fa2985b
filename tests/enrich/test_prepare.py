"""CLIP's input for an image (models.clip.prepare_image): extreme strips, ordinary images."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from PIL import Image

from assetlens.models.clip import MAX_ASPECT, prepare_image


@pytest.mark.parametrize("size", [(1, 20_000), (20_000, 1), (3, 50_000)])
def test_extreme_strips_are_cut_to_their_centre_before_scaling(
    size: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Scaling the whole strip would ask Pillow for 224 x 4 480 000 pixels or more (gigabytes):
    # record every size Pillow is asked to resize to.
    asked: list[int] = []
    resize = Image.Image.resize

    def recording(im: Image.Image, target: tuple[int, int], *args: Any, **kwargs: Any) -> Image.Image:
        asked.append(target[0] * target[1])
        return resize(im, target, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "resize", recording)
    pixels = prepare_image(Image.new("RGB", size, (10, 200, 30)), 224)

    assert pixels.shape == (224, 224, 3) and max(asked) <= 224 * 224 * MAX_ASPECT
    assert (pixels == (10, 200, 30)).all()


def test_ordinary_images_get_clips_own_preprocessing_unchanged() -> None:
    rng = np.random.default_rng(0)
    for size in [(640, 480), (200, 1000), (224 * MAX_ASPECT, 224)]:
        image = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
        # CLIP's own steps, spelled out: shorter side to 224 (bicubic), then the centre square.
        w, h = image.size
        scaled = image.resize((max(224, round(w * 224 / min(w, h))), max(224, round(h * 224 / min(w, h)))),
                              Image.Resampling.BICUBIC, reducing_gap=3.0)  # fmt: skip
        left, top = (scaled.width - 224) // 2, (scaled.height - 224) // 2
        expected = np.asarray(scaled.crop((left, top, left + 224, top + 224)))
        assert np.array_equal(prepare_image(image, 224), expected)


def test_the_kept_centre_is_the_centre_of_the_strip() -> None:
    strip = np.zeros((10_000, 40, 3), np.uint8)
    strip[4_995:5_005] = 255  # a white band across the middle of a tall black strip
    pixels = prepare_image(Image.fromarray(strip), 224)  # CLIP keeps rows 4 980-5 020

    assert pixels[112].min() == 255 and pixels[:40].max() == 0 and pixels[-40:].max() == 0
