"""The stages that read text: speech (:class:`Transcribe`, Whisper) and the text in pictures
(:class:`Ocr`). Each holds a model, opened once per worker, and comes last in an ingest (see
:mod:`assetlens.enrich.stages` for what a stage is).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from PIL import Image

from assetlens.enrich.decode import DEFAULT_MAX_PIXELS
from assetlens.enrich.errors import DecodeError
from assetlens.enrich.ocr import TextStage
from assetlens.enrich.stages import Resources
from assetlens.enrich.transcribe import transcribe_file
from assetlens.enrich.work import Failure, FileWork
from assetlens.models.errors import AssetLensError
from assetlens.models.ocr import TextReader
from assetlens.models.settings import OcrSettings, WhisperSettings
from assetlens.models.whisper import Transcriber

log = logging.getLogger(__name__)


class Transcribe:
    """Whisper segments of a file's speech (an audio file, a video's sound track).

    A file that cannot be transcribed keeps everything else; the reason is recorded.

    Args:
        settings: Which Whisper model and how it runs.
    """

    name = "transcribe"
    resources = Resources(model=True, cpus=2.0, batch=1)  # long, uneven files: one at a time

    def __init__(self, settings: WhisperSettings, transcriber: Transcriber | None = None) -> None:
        self.settings = settings
        self._transcriber = transcriber

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_transcriber": None}

    def open(self) -> None:
        """Create the model (its weights load on the first file with sound)."""
        if self._transcriber is None:
            self._transcriber = Transcriber(self.settings)

    def __call__(self, batch: Sequence[FileWork]) -> list[FileWork]:
        return [self.one(w) if self.applies(w) else w for w in batch]

    @staticmethod
    def applies(w: FileWork) -> bool:
        """A file with sound (a file not decoded in this run was found to have sound before)."""
        sound = w.probe.has_audio if w.probe is not None else w.kind in ("audio", "video")
        return w.wants("transcribe") and sound

    def one(self, w: FileWork) -> FileWork:
        """Transcribe one file."""
        assert self._transcriber is not None, "open() the stage first"
        try:
            segments = transcribe_file(self._transcriber, w.candidate.path)
        except (DecodeError, OSError) as exc:
            reason = (
                exc.reason if isinstance(exc, DecodeError) else f"cannot read file ({exc.strerror or exc})"
            )
            return replace(w, problems=(*w.problems, Failure("transcribe", reason)))
        return replace(w, segments=tuple(segments), transcript_model=self._transcriber.model_id)


class Ocr:
    """Text lines of an image or of a video's keyframes (:class:`~enrich.ocr.TextStage`), pictures dropped.

    A file whose text cannot be read keeps everything else; the reason is recorded (stage
    ``ocr``). The models load where the stage runs, on first use: the quick text check on the
    first picture, the recogniser on the first picture that shows text.

    Args:
        settings: The OCR settings; ``settings.ocr`` is the mode (``auto`` or ``on``).
        max_pixels: Largest image decoded again at OCR resolution.
        reader: A reader already made in this process (the local executor's); a worker that
            receives the stage by pickling makes its own.

    Raises:
        ValueError: The mode is ``off`` (no stage is built then).
    """

    name = "ocr"
    resources = Resources(model=True)

    def __init__(
        self, settings: OcrSettings, max_pixels: int = DEFAULT_MAX_PIXELS, reader: TextReader | None = None
    ) -> None:
        if settings.ocr == "off":
            raise ValueError("OCR is off: build no OCR stage")
        self.settings, self.max_pixels = settings, max_pixels
        self._reader = reader
        self._text: TextStage | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_reader": None, "_text": None}

    def open(self) -> None:
        """Make the reader (its models load on first use)."""
        if self._reader is None:
            self._reader = TextReader(self.settings)
        self._text = TextStage(self._reader, self.settings.ocr, self.max_pixels)

    def __call__(self, batch: Sequence[FileWork]) -> list[FileWork]:
        return [self.one(w) if w.wants("ocr") and w.ocr_pictures else w for w in batch]

    def one(self, w: FileWork) -> FileWork:
        """Read the text of one file's pictures."""
        assert self._text is not None, "open() the stage first"
        try:
            if w.kind == "image":
                assert w.metadata is not None
                full = (w.metadata.width, w.metadata.height)
                lines = self._text.image(w.candidate.path, Image.fromarray(w.ocr_pictures[0]), full)
            else:
                lines = self._text.frames(list(zip(w.ocr_pictures, w.times, strict=True)))
        except Exception as exc:  # one picture must not end a run: the file keeps the rest
            if isinstance(exc, DecodeError):  # the second decode, at OCR resolution
                reason = exc.reason
            elif isinstance(exc, AssetLensError):
                reason = str(exc)
            else:
                log.exception("OCR of %s failed", w.candidate.path)
                reason = f"{type(exc).__name__}: {exc}"
            return replace(w, ocr_pictures=(), problems=(*w.problems, Failure("ocr", reason)))
        return replace(w, ocr_pictures=(), ocr_lines=lines, ocr_model=self._text.model)
