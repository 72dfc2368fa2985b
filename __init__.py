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
    from assetlens.enrich.errors import PathNotFoundError
    from assetlens.enrich.facade import (
        AssetRecord,
        IngestProgress,
        IngestReport,
        Library,
        LibrarySettings,
        SearchPage,
        SearchResult,
        open,
    )
    from assetlens.enrich.lock import LibraryBusyError
    from assetlens.models.errors import SettingsError, WeightsMissingError
    from assetlens.search.errors import (
        AssetNotFoundError,
        FilterError,
        LibraryNotFoundError,
        ModelMismatchError,
        QueryError,
    )

_FACADE = "assetlens.enrich.facade"
_LAZY = {
    **dict.fromkeys(
        ("open", "Library", "LibrarySettings", "IngestReport", "IngestProgress", "SearchPage", "SearchResult",
         "AssetRecord"),
        _FACADE,
    ),
    # The errors a program most often tells apart; all are AssetLensError.
    "PathNotFoundError": "assetlens.enrich.errors",
    "LibraryBusyError": "assetlens.enrich.lock",
    "SettingsError": "assetlens.models.errors",
    "WeightsMissingError": "assetlens.models.errors",
    **dict.fromkeys(
        ("AssetNotFoundError", "FilterError", "LibraryNotFoundError", "ModelMismatchError", "QueryError"),
        "assetlens.search.errors",
    ),
}  # fmt: skip

__all__ = [  # what _LAZY names, and the two names defined here
    "AssetLensError",
    "AssetNotFoundError",
    "AssetRecord",
    "FilterError",
    "IngestProgress",
    "IngestReport",
    "Library",
    "LibraryBusyError",
    "LibraryNotFoundError",
    "LibrarySettings",
    "ModelMismatchError",
    "PathNotFoundError",
    "QueryError",
    "SearchPage",
    "SearchResult",
    "SettingsError",
    "WeightsMissingError",
    "__version__",
    "open",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'assetlens' has no attribute {name!r}")
