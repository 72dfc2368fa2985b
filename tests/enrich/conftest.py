"""A library made through the public API once per module: the sample photos and the spoken memo."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import PHOTOS, SPEECH

import assetlens


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Copies of the photos and the memo, in a folder with a space and a non-ASCII name."""
    root = tmp_path_factory.mktemp("media") / "médiathèque 2024"
    shutil.copytree(PHOTOS, root / "photos", ignore=shutil.ignore_patterns("*.txt"))
    (root / "speech").mkdir()
    shutil.copy(SPEECH / "spring_memo.ogg", root / "speech")
    return root


@pytest.fixture(scope="module")
def shared_lib(tmp_path_factory: pytest.TempPathFactory, media: Path) -> Iterator[assetlens.Library]:
    """An ingested library that tests read but do not change (those that write make their own)."""
    with assetlens.open(tmp_path_factory.mktemp("shared") / "data", model="tiny") as lib:
        report = lib.ingest(media)
        assert (report.added, report.failed, report.transcribed) == (9, 0, 1), report
        yield lib
