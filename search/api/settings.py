"""Settings of the HTTP API (environment prefix ``ASSETLENS_API_``).

The library itself (data dir, model) is configured by ``SearchSettings`` and ``ModelSettings``;
these are the limits and switches of the HTTP edge.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _split(value: Any, separators: str) -> Any:
    """A list from ``a:b,c`` text (environment variables), or the value as given."""
    if isinstance(value, str):
        return [part.strip() for part in re.split(f"[{re.escape(separators)}]", value) if part.strip()]
    return value


class ApiSettings(BaseSettings):
    """Limits and switches of the HTTP API.

    Attributes:
        roots: Folders that ``POST /v1/ingest`` may read server paths from (``ASSETLENS_API_ROOTS``,
            separated by ``:`` or ``,``). Empty: server paths are refused, only uploads work.
        anonymous_read: Serve ``read``-scope routes without an API key.
        max_upload_mb: Largest multipart request (all files together), in MiB.
        max_body_kb: Largest JSON (or other non-multipart) request body, in KiB.
        max_pixels: Largest uploaded image (width x height) decoded or accepted.
        max_page_size: Most results one page may ask for (at most 100).
        cors_origins: Origins allowed to call the API from a browser (``*`` for any); empty: no CORS.
        batch_window_ms: Concurrent query texts arriving within this window are encoded together.
        batch_max: Most texts encoded in one batch (a full batch goes at once).
        db_connections: SQLite connections in the pool (one request uses one at a time).
        max_jobs: Ingest and tag jobs (worker processes) running at once (more wait, ``queued``).
        metrics_public: Serve ``/metrics`` without a key (it holds counts, no asset data).
        max_header_kb: Largest request head the server accepts (``assetlens serve``).
        job_grace_s: On shutdown, seconds running jobs get to stop after an interrupt.
    """

    model_config = SettingsConfigDict(env_prefix="ASSETLENS_API_", extra="ignore")

    roots: Annotated[tuple[Path, ...], NoDecode] = ()
    anonymous_read: bool = False
    max_upload_mb: float = Field(default=200.0, gt=0)
    max_body_kb: int = Field(default=1024, ge=1)
    max_pixels: int = Field(default=50_000_000, ge=1)
    max_page_size: int = Field(default=100, ge=1, le=100)
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    batch_window_ms: float = Field(default=5.0, ge=0)
    batch_max: int = Field(default=64, ge=1)
    db_connections: int = Field(default=8, ge=1)
    max_jobs: int = Field(default=1, ge=1)
    metrics_public: bool = True
    max_header_kb: int = Field(default=16, ge=1)
    job_grace_s: float = Field(default=10.0, ge=0)

    @field_validator("roots", mode="before")
    @classmethod
    def _roots(cls, value: Any) -> Any:
        return _split(value, ":,")

    @field_validator("roots")
    @classmethod
    def _resolve_roots(cls, value: tuple[Path, ...]) -> tuple[Path, ...]:
        # Compared against resolved paths, so they are resolved too (a root may be a symlink).
        return tuple(Path(os.path.realpath(os.path.expanduser(str(p)))) for p in value)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        return _split(value, ",")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_body_bytes(self) -> int:
        return self.max_body_kb * 1024
