"""The public Python API: ``assetlens.open(data_dir) -> Library``.

One object per library (a data dir), usable as a context manager, whose methods take and return
plain Python values and frozen records. The command line and the HTTP API are thin layers over
it or over what it calls (:class:`~assetlens.search.library.LibraryCore` and the engines), so a
program gets exactly what ``assetlens ingest`` or ``assetlens search`` does::

    import assetlens

    with assetlens.open("assetlens-data") as lib:
        report = lib.ingest(["photos/"])
        page = lib.search("red sneaker on white", filter="kind:image created>=2024-01-01")
        for hit in page.results:
            print(hit.relevance, hit.uri, hit.t)

Every error raised on purpose is an :class:`assetlens.AssetLensError` whose message says what
is at fault and what to do.
"""

from assetlens.enrich.facade.library import Library, open
from assetlens.enrich.facade.records import AssetRecord, SearchPage, SearchResult
from assetlens.enrich.facade.settings import LibrarySettings
from assetlens.enrich.writer import IngestProgress, IngestReport

__all__ = [
    "AssetRecord",
    "IngestProgress",
    "IngestReport",
    "Library",
    "LibrarySettings",
    "SearchPage",
    "SearchResult",
    "open",
]
