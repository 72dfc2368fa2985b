"""Every setting a library's work reads, resolved once: :class:`LibrarySettings`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from assetlens.enrich.settings import EnrichSettings
from assetlens.models.settings import ModelSettings, WhisperSettings, settings_error
from assetlens.search.settings import SearchSettings


@dataclass(frozen=True)
class LibrarySettings:
    """The settings of one library and of the work done on it, read once.

    A record of the packages' own settings objects: it pickles, so a worker process (the HTTP
    API's ingest jobs) runs with exactly the settings of the process that started it rather
    than with whatever its environment says.

    Attributes:
        library: Where the library lives and how its index is built.
        models: Which CLIP model runs, and how.
        enrich: Ingest defaults (batch size, decode threads, engine).
        whisper: Which Whisper model transcribes, and how.
    """

    library: SearchSettings
    models: ModelSettings
    enrich: EnrichSettings
    whisper: WhisperSettings

    @classmethod
    def load(
        cls, data_dir: str | os.PathLike[str] | None = None, *, model: str | None = None
    ) -> LibrarySettings:
        """The arguments given over the ``ASSETLENS_*`` variables over the defaults.

        Raises:
            SettingsError: An ``ASSETLENS_*`` variable out of range (each one named).
        """
        try:
            search = SearchSettings() if data_dir is None else SearchSettings(data_dir=Path(data_dir))
            models = ModelSettings() if model is None else ModelSettings(clip_model=model)
            return cls(search, models, EnrichSettings(), WhisperSettings())
        except ValidationError as exc:
            raise settings_error(exc) from None
