"""Fixtures shared by test_clip.py and test_weights.py: the photos and a tiny encoder."""

from __future__ import annotations

from pathlib import Path

import pytest
from clip_support import tiny_encoder
from PIL import Image

from assetlens.models.clip import ClipEncoder

PHOTOS = Path(__file__).parents[1] / "data" / "photos"


@pytest.fixture(scope="module")
def module_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("clip")


@pytest.fixture(scope="module")
def encoder(module_tmp: Path) -> ClipEncoder:
    """A loaded tiny encoder shared by tests that only read from it (its text cache is not inspected)."""
    enc = tiny_encoder(module_tmp)
    enc.load()
    return enc


@pytest.fixture(scope="module")
def photo_images() -> list[Image.Image]:
    paths = sorted(PHOTOS.glob("*.jpg"))
    assert len(paths) >= 4
    images = []
    for path in paths:
        with Image.open(path) as im:
            images.append(im.convert("RGB"))
    return images
