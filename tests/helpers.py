"""Helpers shared by tests: the same wiring the CLI uses, on the tiny model."""

from __future__ import annotations

from pathlib import Path

from assetlens.enrich.facade.settings import LibrarySettings
from assetlens.enrich.pipeline import Ingester
from assetlens.enrich.settings import EnrichSettings
from assetlens.enrich.tagging import Tagger
from assetlens.models.settings import ModelSettings, WhisperSettings
from assetlens.models.vocab import load_vocabulary
from assetlens.search.library import LibraryCore
from assetlens.search.settings import SearchSettings

PHOTOS = Path(__file__).parent / "data" / "photos"
SPEECH = Path(__file__).parent / "data" / "speech"
"""The spoken memo of the README quickstart (``spring_memo.ogg``, made by ``make_memo.py``)."""
MEMO_SPRING_AT = (8.2, 9.5)
"""Where "The spring collection launches..." begins in the memo (seconds, with Whisper's slack)."""


def open_library(data_dir: Path, **model: object) -> LibraryCore:
    """A library on the tiny model unless told otherwise."""
    return LibraryCore(SearchSettings(data_dir=data_dir), ModelSettings(**{"clip_model": "tiny", **model}))


def ingester_for(lib: LibraryCore) -> Ingester:
    """The same wiring as ``assetlens ingest``."""
    tagger = Tagger(lib.encoder, load_vocabulary())  # label embeddings: the session's machine cache
    return Ingester(lib.store, lib.encoder, tagger, lib.index)


def library_settings(lib: LibraryCore) -> LibrarySettings:
    """The facade's settings of ``lib`` (its data dir and model; the rest from the environment)."""
    return LibrarySettings(lib.settings, lib.model_settings, EnrichSettings(), WhisperSettings())
