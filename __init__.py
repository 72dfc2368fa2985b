"""AssetLens: AI enrichment and semantic search for digital asset libraries.

The public Python API::

    import assetlens

    with assetlens.open("assetlens-data") as lib:
        lib.ingest(["photos/"])
        for hit in lib.search("red sneaker on white", filter="kind:image").results:
            print(hit.uri, hit.relevance)

This module stays light: ``import assetlens`` loads neither torch nor SQLite. The facade
(:mod:`assetlens.enrich.facade`) is imported on first use of one of its names.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from assetlens.models.errors import AssetLensError

try:
    __version__ = version("assetlens")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

if TYPE_CHECKING:
    from assetlens.enrich.facade import (
        AssetRecord,
        IngestReport,
        Library,
        SearchPage,
        SearchResult,
        open,
    )

_FACADE = ("open", "Library", "IngestReport", "SearchPage", "SearchResult", "AssetRecord")

__all__ = [
    "AssetLensError",
    "AssetRecord",
    "IngestReport",
    "Library",
    "SearchPage",
    "SearchResult",
    "__version__",
    "open",
]


def __getattr__(name: str) -> Any:
    if name in _FACADE:
        return getattr(import_module("assetlens.enrich.facade"), name)
    raise AttributeError(f"module 'assetlens' has no attribute {name!r}")
