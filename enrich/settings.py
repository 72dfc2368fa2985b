"""Settings of the enrichment pipelines (environment prefix ``ASSETLENS_``)."""

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from assetlens.enrich.decode import DEFAULT_MAX_PIXELS


class EnrichSettings(BaseSettings):
    """Defaults of ``assetlens ingest``; command-line flags override them.

    Attributes:
        max_pixels: Largest image (width x height) decoded; larger files fail (decompression bombs).
        batch_size: Images per CLIP batch and per store transaction (0: 32 on a CPU, 128 on CUDA).
        workers: Decode threads (0: as many as cores, at most 4 on a CPU; every core with CUDA).
        engine: Where the stages run: ``local`` (this process), ``ray`` (a Ray cluster: the one
            at ``ray_address``, else a new local one), ``auto`` (a running cluster, else local).
        ray_address: The Ray cluster to join (the head's ``HOST:PORT``).
        ray_actors: Actors per model stage on Ray (0: one per node, or one per GPU).
    """

    model_config = SettingsConfigDict(env_prefix="ASSETLENS_", extra="ignore")

    max_pixels: int = Field(default=DEFAULT_MAX_PIXELS, ge=1)
    batch_size: int = Field(default=0, ge=0, le=4096)
    workers: int = Field(default=0, ge=0, le=64)
    engine: Literal["local", "ray", "auto"] = "local"
    ray_address: str | None = None
    ray_actors: int = Field(default=0, ge=0, le=1024)
