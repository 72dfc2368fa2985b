"""The record that flows through the enrichment stages: one :class:`FileWork` per file.

The plan makes one per file to (re)process, each stage returns it with its own results filled in
(``dataclasses.replace``: records are frozen), and the writer stores it. It carries no store
handle, lock or model: it pickles, so the Ray executor ships it between processes and nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from assetlens.enrich.decode import ImageMetadata
from assetlens.enrich.scan import Candidate
from assetlens.enrich.video import MediaProbe
from assetlens.search.store import Tag, TextLine

# The stages a new or changed file goes through (each stage skips what is not for it).
FULL = frozenset({"decode", "hash", "embed", "tag", "learned", "transcribe", "ocr"})


@dataclass(frozen=True)
class Failure:
    """Why a stage could not do its work on a file.

    A failure of ``read`` or ``decode`` fails the file (the asset is stored as failed); one of a
    later stage (``transcribe``, ``ocr``) is recorded, and the file keeps everything else.
    """

    stage: str
    reason: str


@dataclass(frozen=True)
class FileWork:
    """One file on its way through the stages.

    Attributes:
        candidate: The scanned file.
        todo: The stages to run on it (see :data:`FULL`); a file ingested earlier without a
            transcript comes back with ``{"transcribe"}`` only, one never read for text with
            ``{"decode", "ocr"}`` (decoded for OCR alone: no embedding).
        asset_id: The stored asset, for work on a file that is already in the library (no
            ``embed`` in ``todo``: only later stages run, and the asset stays as it is).
        kind: Kind after probing (an MP4 holding only sound is ``audio``).
        content_hash: BLAKE2b-128 of the content (None until hashed, or if unreadable). For
            work on a stored asset, its stored hash until decoding checks the file against it.
        known_content: The content is already embedded in the library: the writer reuses it
            (rename, exact duplicate) and no later stage runs.
        pixels: ``(K, size, size, 3)`` model input, one row per image or keyframe; dropped after
            embedding.
        times: Keyframe times (None for a still image), one per row of ``pixels``.
        ocr_pictures: RGB ``uint8`` pictures for the OCR stage, one per entry of ``times``:
            an image's draft as decoded for CLIP, or a video's keyframes at the OCR frame side;
            empty unless the file wants ``ocr``, and dropped once read.
        metadata: Embedded metadata of an image. probe: Streams and duration of video/audio.
        thumbs: ``(K, 64, 64)`` greyscale copies of the whole image or keyframes, one per row
            of ``pixels``, for perceptual hashing; dropped once hashed.
        hashes: ``(K, rows, 2)`` perceptual hashes of the frames (:mod:`enrich.phash`).
        vectors: ``(K, dim)`` unit vectors, one per row of ``pixels``.
        tags: The asset's tags (best score per tag over its keyframes).
        learned: Its tags from the library's learned classifiers (source ``learned``).
        segments: Transcript segments (JSON-ready), or None when not transcribed.
        transcript_model: The Whisper model id of ``segments``.
        ocr_lines: Lines of text read in the pictures, or None when not read.
        ocr_model: The reader (cache key) of ``ocr_lines``.
        failure: A ``read``/``decode`` failure: the file fails.
        problems: Failures of later stages: recorded, the file is kept.
    """

    candidate: Candidate
    todo: frozenset[str] = FULL
    asset_id: int | None = None
    kind: str | None = None
    content_hash: str | None = None
    known_content: bool = False
    pixels: np.ndarray | None = None
    times: tuple[float | None, ...] = ()
    ocr_pictures: tuple[np.ndarray, ...] = ()
    metadata: ImageMetadata | None = None
    probe: MediaProbe | None = None
    thumbs: np.ndarray | None = None
    hashes: np.ndarray | None = None
    vectors: np.ndarray | None = None
    tags: tuple[Tag, ...] = ()
    learned: tuple[Tag, ...] = ()
    segments: tuple[dict[str, Any], ...] | None = None
    transcript_model: str | None = None
    ocr_lines: tuple[TextLine, ...] | None = None
    ocr_model: str | None = None
    failure: Failure | None = None
    problems: tuple[Failure, ...] = field(default=())

    @property
    def frames(self) -> int:
        """Pictures this file brings to a batch: rows of CLIP input, else pictures to read."""
        return len(self.ocr_pictures) if self.pixels is None else len(self.pixels)

    @property
    def stored(self) -> bool:
        """Work on an asset already in the library: no embedding, later stages only."""
        return self.asset_id is not None and "embed" not in self.todo

    @property
    def alive(self) -> bool:
        """Neither failed nor reused: later stages still have work on it."""
        return self.failure is None and not self.known_content

    def wants(self, stage: str) -> bool:
        """Whether ``stage`` has work on this file."""
        return self.alive and stage in self.todo
