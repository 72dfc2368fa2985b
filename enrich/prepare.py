"""The worker stage of ingest: hash a file, then decode it into model input, per kind.

Runs in decode threads (Pillow and PyAV release the GIL while decoding and scaling). A file
whose content hash is already embedded in the store is not decoded at all: the pipeline
reuses its vectors (rename or exact duplicate).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from assetlens.enrich.decode import ImageMetadata, decode_image
from assetlens.enrich.errors import DecodeError
from assetlens.enrich.scan import Candidate
from assetlens.enrich.video import KeyframeOptions, MediaProbe, extract_keyframes, probe_media
from assetlens.models.clip import prepare_image
from assetlens.models.registry import file_digest


@dataclass(frozen=True)
class Prepared:
    """A file after the worker stage.

    Attributes:
        candidate: The scanned file.
        kind: Kind after probing (an MP4 holding only sound is ``audio``).
        content_hash: BLAKE2b-128 of the content (None when the file could not be read).
        pixels: ``(K, size, size, 3)`` model input: one row per image or video keyframe.
        times: Keyframe times (None for a still image), one per row of ``pixels``.
        metadata: Embedded metadata of an image.
        probe: Streams and duration of a video or audio file.
        stage, reason: Set when the file failed.
        known_content: The content hash is already embedded: reuse, don't decode.
    """

    candidate: Candidate
    kind: str | None = None
    content_hash: str | None = None
    pixels: np.ndarray | None = None
    times: tuple[float | None, ...] = ()
    metadata: ImageMetadata | None = None
    probe: MediaProbe | None = None
    stage: str | None = None
    reason: str | None = None
    known_content: bool = False

    @property
    def frames(self) -> int:
        """Rows of model input this file brings to a batch."""
        return 0 if self.pixels is None else len(self.pixels)


def make_worker(
    size: int, max_pixels: int, keyframes: KeyframeOptions, known: set[str]
) -> Callable[[Candidate], Prepared]:
    """The per-file work of a decode thread.

    Args:
        size: Model input side.
        max_pixels: Largest still image decoded.
        keyframes: How keyframes are chosen in videos.
        known: Content hashes already embedded in the store (not decoded again).
    """

    def work(c: Candidate) -> Prepared:
        try:
            digest = file_digest(c.path, digest_size=16)
        except OSError as exc:
            return Prepared(c, c.kind, stage="read", reason=f"cannot read file ({exc.strerror or exc})")
        if digest in known:
            return Prepared(c, c.kind, digest, known_content=True)
        try:
            if c.kind == "image":
                decoded = decode_image(c.path, min_side=size, max_pixels=max_pixels)
                pixels = prepare_image(decoded.image, size)[None]
                return Prepared(c, "image", digest, pixels, (None,), metadata=decoded.metadata)
            probe = probe_media(c.path)
            if probe.has_video:
                probe, frames = extract_keyframes(c.path, keyframes)
                pixels = np.stack([prepare_image(k.image, size) for k in frames])
                return Prepared(c, "video", digest, pixels, tuple(k.t for k in frames), probe=probe)
            if probe.has_audio:
                return Prepared(c, "audio", digest, probe=probe)
            return Prepared(c, c.kind, digest, stage="decode", reason="no video or audio stream")
        except DecodeError as exc:
            return Prepared(c, c.kind, digest, stage="decode", reason=exc.reason)

    return work
