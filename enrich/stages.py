"""The enrichment stages: decode -> hash -> embed -> tag -> learned -> ocr -> transcribe.

A stage takes a batch of :class:`FileWork` and returns it with its own results filled in. It
knows nothing of threads, Ray or SQLite: an executor (:mod:`assetlens.enrich.executors`) runs the
stages, the writer (:mod:`assetlens.enrich.writer`) stores the results. A stage skips the files
that are not for it (``FileWork.wants``), so a batch keeps its order and length.

Each stage says what one worker of it needs (:class:`Resources`): a stage that holds a model is
opened once per worker (a thread locally, an actor on Ray) and then fed batches; the others are
plain functions of a file. A stage is pickled to reach a Ray worker, so it holds settings, not
loaded models: :meth:`open` loads them where it runs.

The stages that read text, speech and pictures' alike, are in :mod:`assetlens.enrich.text_stages`.
A new stage is one more class with the same three members, added to
:func:`assetlens.enrich.pipeline.ingest_stages`; neither executor changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from assetlens.enrich.decode import decode_image
from assetlens.enrich.errors import DecodeError
from assetlens.enrich.phash import fingerprints, hash_thumbnail
from assetlens.enrich.tagging import TagScorer
from assetlens.enrich.video import KeyframeOptions, extract_keyframes, probe_media
from assetlens.enrich.work import Failure, FileWork
from assetlens.models.clip import ClipEncoder, prepare_image
from assetlens.models.registry import ModelSpec, file_digest
from assetlens.models.settings import ModelSettings
from assetlens.search.learned import LearnedTag, learned_tags_of


@dataclass(frozen=True)
class Resources:
    """What one worker of a stage needs.

    Attributes:
        model: Holds a model: opened once per worker and fed batches (Ray: an actor pool).
            Otherwise the stage is a function of each file (locally: decode threads; Ray: tasks).
        cpus: CPU cores one worker keeps busy.
        gpus: GPUs one worker uses when the cluster has them (0: CPU only).
        batch: Files per call (0: the executor's batch).
    """

    model: bool = False
    cpus: float = 1.0
    gpus: float = 0.0
    batch: int = 0


class Stage(Protocol):
    """What an executor needs of a stage."""

    name: str
    resources: Resources

    def open(self) -> None:
        """Load what the stage needs (models): once per worker, before its first batch."""

    def __call__(self, batch: Sequence[FileWork]) -> list[FileWork]:
        """The batch with this stage's results filled in (same order and length)."""


class Decode:
    """Hash a file, then decode it into model input: an image, a video's keyframes, or probe a sound file.

    Content already embedded in the library (``known`` hashes) is not decoded: the writer reuses
    its vectors, tags and transcript (a rename or an exact duplicate).

    A file that wants ``ocr`` also keeps its pictures for reading: an image's draft (the decode
    made for CLIP, reused as is), or a video's keyframes with their shorter side at least
    ``text_side`` (CLIP's input is then made from those). A stored asset decoded for OCR or
    hashes alone (:attr:`FileWork.stored`) gets no CLIP input, and what goes wrong is that
    stage's problem: the asset keeps everything it has.

    Args:
        size: Model input side.
        max_pixels: Largest still image decoded.
        keyframes: How keyframes are chosen in videos.
        known: Content hashes already embedded in the library.
        text_side: Shorter side of the keyframes kept for OCR (at least ``size`` is kept).
    """

    name = "decode"
    resources = Resources()

    def __init__(
        self,
        size: int,
        max_pixels: int,
        keyframes: KeyframeOptions,
        known: frozenset[str],
        text_side: int = 0,
    ) -> None:
        self.size, self.max_pixels, self.keyframes, self.known = size, max_pixels, keyframes, known
        self.text_side = text_side

    def open(self) -> None:
        """Nothing to load."""

    def __call__(self, batch: Sequence[FileWork]) -> list[FileWork]:
        return [self.one(w) if w.wants("decode") else w for w in batch]

    def one(self, w: FileWork) -> FileWork:
        """Decode one file."""
        c = w.candidate
        try:
            digest = file_digest(c.path, digest_size=16)
        except OSError as exc:
            return _failed(w, "read", f"cannot read file ({exc.strerror or exc})")
        if w.stored and w.content_hash is not None and digest != w.content_hash:
            return _failed(w, "read", "the file changed since it was ingested: ingest it again")
        if digest in self.known and not w.stored:
            return replace(w, content_hash=digest, known_content=True)
        w = replace(w, content_hash=digest)
        embed, hashed, read = w.wants("embed"), w.wants("hash"), w.wants("ocr")
        try:
            if c.kind == "image":
                decoded = decode_image(c.path, min_side=self.size, max_pixels=self.max_pixels)
                return replace(
                    w, kind="image", times=(None,), metadata=decoded.metadata,
                    pixels=prepare_image(decoded.image, self.size)[None] if embed else None,
                    thumbs=hash_thumbnail(decoded.image)[None] if hashed else None,
                    ocr_pictures=(np.asarray(decoded.image),) if read else (),
                )  # fmt: skip
            probe = probe_media(c.path)
            if probe.has_video:
                side = max(self.size, self.text_side) if read else self.size
                probe, frames = extract_keyframes(c.path, replace(self.keyframes, min_side=side))
                return replace(
                    w, kind="video", times=tuple(k.t for k in frames), probe=probe,
                    pixels=np.stack([prepare_image(k.image, self.size) for k in frames]) if embed else None,
                    thumbs=np.stack([hash_thumbnail(k.image) for k in frames]) if hashed else None,
                    ocr_pictures=tuple(np.asarray(k.image) for k in frames) if read else (),
                )  # fmt: skip
            if probe.has_audio:
                return replace(w, kind="audio", probe=probe)
            return _failed(w, "decode", "no video or audio stream")
        except DecodeError as exc:
            return _failed(w, "decode", exc.reason)


def _failed(w: FileWork, stage: str, reason: str) -> FileWork:
    """A file that cannot be decoded: it fails, unless it is a stored asset, read again for its
    text or its hashes: then that stage fails, and the asset stays as it is."""
    if w.stored:
        return replace(w, problems=(*w.problems, Failure("ocr" if w.wants("ocr") else "hash", reason)))
    return replace(w, failure=Failure(stage, reason))


class Hash:
    """Perceptual hashes of every image and keyframe (:mod:`enrich.phash`), for near-duplicates.

    Reads the small greyscale copies decoding made (the whole frame: the model's input is a
    centre crop at the model's size) and drops them. No model, no file.
    """

    name = "hash"
    resources = Resources(cpus=0.25)

    def open(self) -> None:
        """Nothing to load."""

    def __call__(self, batch: Sequence[FileWork]) -> list[FileWork]:
        return [
            replace(w, hashes=fingerprints(w.thumbs), thumbs=None)
            if w.wants("hash") and w.thumbs is not None
            else w
            for w in batch
        ]


class Embed:
    """CLIP vectors of every image and keyframe; the pixels are dropped once embedded.

    Args:
        spec: The CLIP model.
        settings: How it runs (precision, threads, device).
        batch_size: Most frames per forward pass.
        encoder: An encoder already loaded in this process (the local executor's); a worker
            that receives the stage by pickling loads its own.
    """

    name = "embed"
    resources = Resources(model=True, cpus=2.0, gpus=1.0)  # the network's GEMMs use several cores

    def __init__(
        self, spec: ModelSpec, settings: ModelSettings, batch_size: int, encoder: ClipEncoder | None = None
    ) -> None:
        self.spec, self.settings, self.batch_size = spec, settings, batch_size
        self._encoder = encoder

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_encoder": None}

    def open(self) -> None:
        """Load the model (weights from the machine cache)."""
        if self._encoder is None:
            self._encoder = ClipEncoder(self.spec, self.settings)
        self._encoder.load()

    def __call__(self, batch: Sequence[FileWork]) -> list[FileWork]:
        assert self._encoder is not None, "open() the stage first"
        todo = [i for i, w in enumerate(batch) if w.wants("embed") and w.pixels is not None]
        if not todo:
            return list(batch)
        frames = np.concatenate([batch[i].pixels for i in todo])
        vectors = np.concatenate(
            [
                self._encoder.encode_prepared(frames[i : i + self.batch_size])
                for i in range(0, len(frames), self.batch_size)
            ]
        )
        out, start = list(batch), 0
        for i in todo:
            n = batch[i].frames
            out[i] = replace(batch[i], vectors=vectors[start : start + n], pixels=None)
            start += n
        return out


class Tag:
    """Zero-shot tags of an asset from its vectors (a matrix product: no model, no file).

    Args:
        scorer: The vocabulary's label embeddings and the threshold rule.
    """

    name = "tag"
    resources = Resources(cpus=0.25)

    def __init__(self, scorer: TagScorer) -> None:
        self.scorer = scorer

    def open(self) -> None:
        """Nothing to load: the label embeddings travel with the stage."""

    def __call__(self, batch: Sequence[FileWork]) -> list[FileWork]:
        return [
            replace(w, tags=tuple(self.scorer.tag_asset(w.vectors, w.times)))
            if w.wants("tag") and w.vectors is not None and len(w.vectors)
            else w
            for w in batch
        ]


class Learned:
    """Tags from the library's learned classifiers (:mod:`search.learned`), from the vectors.

    A learned tag that replaces a vocabulary tag of its name drops the zero-shot one.

    Args:
        tags: The classifiers, fitted on the vectors of the model this ingest runs.
    """

    name = "learned"
    resources = Resources(cpus=0.25)

    def __init__(self, tags: Sequence[LearnedTag]) -> None:
        self.tags = tuple(tags)
        self.replaced = frozenset(t.name for t in tags if t.replaces_vocabulary)

    def open(self) -> None:
        """Nothing to load: the classifiers travel with the stage."""

    def __call__(self, batch: Sequence[FileWork]) -> list[FileWork]:
        return [
            replace(
                w,
                learned=tuple(learned_tags_of(self.tags, w.vectors, w.times)),
                tags=tuple(t for t in w.tags if t.tag not in self.replaced),
            )
            if w.wants("learned") and w.vectors is not None and len(w.vectors)
            else w
            for w in batch
        ]
