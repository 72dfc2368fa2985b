"""Fixtures shared by test_clip.py and test_weights.py: offline isolation, the photos, a tiny encoder."""

from __future__ import annotations

import os
from pathlib import Path

import huggingface_hub.constants
import pytest
from clip_support import tiny_encoder
from PIL import Image

from models.clip import ClipEncoder

PHOTOS = Path(__file__).parents[1] / "data" / "photos"


# Not autouse: the other model tests keep their own isolation. test_clip.py and test_weights.py
# apply it to every test through ``pytestmark``.
@pytest.fixture
def _offline_and_isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No network, no Hugging Face cache outside tmp_path, no ASSETLENS_* settings from the shell."""
    for key in list(os.environ):
        if key.startswith("ASSETLENS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    # huggingface_hub reads these once at import time; the env alone would not redirect it. Its
    # offline flag is also the safety net should our code ever try a download in these tests.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


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
