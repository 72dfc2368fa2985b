"""Every setting a library's work reads, resolved once: :class:`LibrarySettings`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from assetlens.enrich.settings import EnrichSettings
from assetlens.models.errors import SettingsError
from assetlens.models.settings import ModelSettings, WhisperSettings, settings_error
from assetlens.search.settings import SearchSettings

Read = TypeVar("Read", bound=BaseSettings)


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
        bad: list[str] = []

        def read(kind: type[Read], **values: Any) -> Read | None:
            try:
                return kind(**values)
            except ValidationError as exc:
                bad.append(str(settings_error(exc)))
                return None

        # Every class is read before any error is raised, so that every bad variable is named.
        library = read(SearchSettings, **({} if data_dir is None else {"data_dir": Path(data_dir)}))
        models = read(ModelSettings, **({} if model is None else {"clip_model": model}))
        enrich, whisper = read(EnrichSettings), read(WhisperSettings)
        if library is None or models is None or enrich is None or whisper is None:
            raise SettingsError("\n".join(bad))
        return cls(library, models, enrich, whisper)
