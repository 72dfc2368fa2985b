"""Shared fixtures: real photos, real SQLite libraries in tmp_path, the real tiny CLIP model."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import huggingface_hub.constants
import pytest
from helpers import PHOTOS, open_library

from assetlens.search.library import LibraryCore


@pytest.fixture(scope="session", autouse=True)
def machine_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The machine-wide cache every test shares (ONNX exports and label embeddings made once).

    Never the developer's ~/.cache; set for the whole session, so that module- and
    session-scoped fixtures (which run outside ``_offline``) use it too. XDG_CACHE_HOME as well,
    so that a command run with ASSETLENS_CACHE_DIR unset (testing the default) stays out.
    Tests of the cache itself use their own folder.
    """
    path = tmp_path_factory.mktemp("machine-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ASSETLENS_CACHE_DIR", str(path))
        patch.setenv("XDG_CACHE_HOME", str(path.parent / "xdg-cache"))
        yield path


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, machine_cache: Path) -> None:
    # Tests never reach a model hub, and never read a developer's own hub cache.
    # The hub cache is tmp_path/hf/hub (tests that fake a cached download write there).
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    # huggingface_hub reads these once at import: patch the values it actually uses. Its offline
    # flag is also the safety net should our code ever try a download in a test.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    for name in [n for n in os.environ if n.startswith("ASSETLENS_")]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ASSETLENS_CACHE_DIR", str(machine_cache))  # swept above; children inherit it


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A private copy of the sample photos (tests may rename, delete or corrupt them)."""
    target = tmp_path / "library"
    shutil.copytree(PHOTOS, target, ignore=shutil.ignore_patterns("*.txt"))
    return target


@pytest.fixture
def lib(tmp_path: Path) -> Iterator[LibraryCore]:
    library = open_library(tmp_path / "data")
    yield library
    library.close()
