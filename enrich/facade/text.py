"""The text side of :class:`~assetlens.enrich.facade.Library`: OCR's mode and models, ``read_text``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Literal

from assetlens.enrich.facade.catalog import LibraryParts
from assetlens.enrich.facade.records import AssetRef
from assetlens.enrich.ocr_pass import TextReport, read_text
from assetlens.enrich.writer import IngestProgress
from assetlens.models.ocr import TextReader
from assetlens.models.settings import OcrSettings
from assetlens.search.errors import QueryError


class TextMethods(LibraryParts):
    """Reading text in pictures (mixed into :class:`Library`; ingest reads it as it goes)."""

    _readers: dict[str, TextReader]  # OCR models by settings, loaded once per process (Library.__init__)

    def read_text(
        self,
        assets: Iterable[AssetRef] | Literal["all", "missing"] = "missing",
        *,
        mode: Literal["auto", "on"] = "on",
        workers: int | None = None,
        batch_size: int | None = None,
        wait: bool = False,
        progress: Callable[[IngestProgress], None] | None = None,
    ) -> TextReport:
        """(Re-)read the text in images and video keyframes; vectors, tags and transcripts stay.

        Args:
            assets: Asset ids or paths, ``"all"`` (every image and video) or ``"missing"``
                (those never read: ingested with OCR off, or whose reading failed).
            mode: ``on`` (default) reads every picture whole: asked for by name, text is
                worth its cost, and small print that ``auto``'s quick check misses is found;
                ``auto`` reads only pictures that check finds text in, as ingest does.
            workers, batch_size: As for :meth:`ingest`.
            progress: Called after each batch with an :class:`IngestProgress`.

        Returns:
            What was read (see :class:`~assetlens.enrich.ocr_pass.TextReport`).

        Raises:
            QueryError: ``assets`` or ``mode`` is not one of the choices.
            AssetNotFoundError: An id or path that is not in the library.
            LibraryBusyError: Another process writes to the library (and ``wait`` is False).
        """
        if mode not in ("auto", "on"):
            raise QueryError(f"text is read in mode 'auto' or 'on', not {mode!r}")
        if isinstance(assets, str) and assets not in ("all", "missing"):
            raise QueryError(f"ocr takes asset ids or paths, 'all' or 'missing', not {assets!r}")
        store = self._existing().store
        with self._writing("ocr", wait):
            if isinstance(assets, str):
                ids = store.ocr.readable(unread=assets == "missing")
                found = store.assets(ids)
                chosen = [found[i] for i in ids if i in found]
            else:
                chosen = list({a.id: a for a in (self.find(ref) for ref in assets)}.values())
            options = self._ingest_options(progress, workers=workers, batch_size=batch_size)
            reader = self._reader(self._ocr_settings(mode))
            return read_text(store, reader, chosen, self.core.encoder.image_size, options)

    def _ocr_settings(self, mode: str | None) -> OcrSettings:
        """The library's OCR settings, in ``mode`` (None: the configured one, ``ASSETLENS_OCR``)."""
        if mode not in (None, "auto", "on", "off"):
            raise QueryError(f"ocr is 'auto', 'on' or 'off', not {mode!r}")
        configured = self.settings.ocr
        return configured if mode is None else configured.model_copy(update={"ocr": mode})

    def _reader(self, settings: OcrSettings) -> TextReader:
        key = settings.model_dump_json()
        if key not in self._readers:
            self._readers[key] = TextReader(settings)
        return self._readers[key]
