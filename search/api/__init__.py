"""The HTTP API (FastAPI): search, similarity, assets, metadata, ingest jobs, keys, metrics.

Start it with ``assetlens serve``, or build it with :func:`create_app`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ApiSettings", "create_app"]


def __getattr__(name: str) -> Any:
    # Loaded on first use: importing FastAPI costs ~0.2 s that commands such as `assetlens
    # ingest` (which only registers `serve` and `keys`) should not pay.
    if name == "create_app":
        from assetlens.search.api.app import create_app

        return create_app
    if name == "ApiSettings":
        from assetlens.search.api.settings import ApiSettings

        return ApiSettings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
