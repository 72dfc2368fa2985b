"""The enrichment stages: decode -> hash -> embed -> tag -> learned -> ocr -> transcribe.

A stage takes a batch of :class:`FileWork` and returns it with its own results filled in. It
knows nothing of threads, Ray or SQLite: an executor (:mod:`assetlens.enrich.executors`) runs the
stages, the writer (:mod:`assetlens.enrich.writer`) stores the results. A stage skips the files
that are not for it (``FileWork.wants``), so a batch keeps its order and length.

Each stage says what one worker of it needs (:class:`Resources`): a stage that holds a model is
opened once per worker (a thread locally, an actor on Ray) and then fed batches; the others are
plain functions of a file. A stage is pickled to reach a Ray worker, so it holds settings, not
loaded models: :meth:`open` loads them where it runs.

A new stage is one more class here with the same three members, added to
:func:`ingest_stages`; neither executor changes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
from PIL import Image

from assetlens.enrich.decode import DEFAULT_MAX_PIXELS, decode_image
from assetlens.enrich.errors import DecodeError
from assetlens.enrich.ocr import TextStage
from assetlens.enrich.phash import fingerprints, hash_thumbnail
from assetlens.enrich.tagging import TagScorer
from assetlens.enrich.transcribe import transcribe_file
from assetlens.enrich.video import KeyframeOptions, extract_keyframes, probe_media
from assetlens.enrich.work import Failure, FileWork
from assetlens.models.clip import ClipEncoder, prepare_image
from assetlens.models.errors import AssetLensError
from assetlens.models.ocr import TextReader
from assetlens.models.registry import ModelSpec, file_digest
from assetlens.models.settings import ModelSettings, OcrSettings, WhisperSettings
from assetlens.models.whisper import Transcriber
from assetlens.search.learned import LearnedTag, learned_tags_of

log = logging.getLogger(__name__)


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


def ingest_stages(
    decode: Decode,
    embed: Embed,
    scorer: TagScorer,
    transcribe: WhisperSettings | None,
    ocr: Ocr | None = None,
    learned: Sequence[LearnedTag] = (),
) -> list[Stage]:
    """The stages of an ingest, in order.

    ``transcribe``/``ocr`` None: no speech/text recognition; ``learned``: the library's learned
    classifiers of this model. OCR comes before transcription so that its pictures are dropped
    before the longest stage.
    """
    stages: list[Stage] = [decode, Hash(), embed, Tag(scorer)]
    if learned:
        stages.append(Learned(learned))
    if ocr is not None:
        stages.append(ocr)
    if transcribe is not None:
        stages.append(Transcribe(transcribe))
    return stages
