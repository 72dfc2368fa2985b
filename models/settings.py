"""Settings of the model layer (environment prefix ``ASSETLENS_``)."""

from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


class ModelSettings(BaseSettings):
    """Which CLIP model to run and how.

    Attributes:
        clip_model: Registry name (``tiny``, ``ViT-B-32``...) or ``ARCH@TAG`` / ``ARCH@random``.
            Unset: the model the library was built with, or ``ViT-B-32`` for a new library.
        clip_checkpoint: Local weights file for the architecture; overrides hub weights.
        clip_precision: ``fp32`` (default) or ``bf16`` (CPUs with AVX-512 BF16/AMX, or CUDA).
        device: ``auto`` (CUDA when present, else CPU), ``cpu`` or ``cuda``.
        model_cache_dir: Where hub weights are cached; callers default it to ``DATA_DIR/models``.
        hub_offline: Never try the network for weights (also implied by ``HF_HUB_OFFLINE=1``).
        text_cache_size: How many query-text embeddings the LRU cache keeps.
    """

    model_config = SettingsConfigDict(env_prefix="ASSETLENS_", extra="ignore")

    clip_model: str | None = None
    clip_checkpoint: Path | None = None
    clip_precision: Literal["fp32", "bf16"] = "fp32"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    model_cache_dir: Path | None = None
    hub_offline: bool = False
    text_cache_size: int = 2048
