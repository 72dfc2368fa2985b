"""The SQLite store: schema, migrations and every SQL statement of AssetLens.

SQLite is the source of truth (the FAISS index is derived from it). The database runs in WAL
mode so searches read while an ingest writes; writers group their work with
:meth:`Store.transaction`, one transaction per batch, so a crash loses at most the batch in
flight and never leaves half an asset behind.

The package keeps one concern per module, and :class:`Store` is composed of them:

- ``schema``: the schema migrations (``MIGRATIONS``, ``PRAGMA user_version``);
- ``records``: :class:`Asset`, :class:`Tag`, ``ASSET_COLUMNS`` and :func:`now_iso`;
- ``base``: the connection, its pragmas, migrating, :meth:`Store.transaction` and ``state``;
- ``assets``: assets and tags;
- ``vectors``: vectors, the library's model and the reads behind the vector index;
- ``transcripts``: transcript segments and full-text (lexical) search;
- ``ocr``: text read in pictures (:class:`OcrStore`, ``Store.ocr``: a room of its own, not a mixin);
- ``duplicates``: perceptual hashes, near-duplicate pairs and groups (``Store.duplicates``, a room);
- ``learned``: tags learned from examples, their classifiers and examples (``Store.learned``, a room);
- ``jobs``: jobs, failures and HTTP API keys;
- ``catalog``: DAM metadata, export reads and facet counts;
- ``filter_reads``: the filter column cache's reads and compiled-filter queries;
- ``imports``: bulk writes of imported embeddings (assets, vectors and tags a batch at a time).
"""

from __future__ import annotations

from functools import cached_property

from assetlens.search.store.assets import AssetsMixin
from assetlens.search.store.base import StoreBase
from assetlens.search.store.catalog import CatalogMixin
from assetlens.search.store.duplicates import DuplicateStore
from assetlens.search.store.filter_reads import FilterReadsMixin
from assetlens.search.store.imports import ImportsMixin
from assetlens.search.store.jobs import JobsMixin
from assetlens.search.store.learned import LearnedTagStore
from assetlens.search.store.ocr import OcrStore, TextLine
from assetlens.search.store.records import ASSET_COLUMNS, Asset, Tag, now_iso
from assetlens.search.store.schema import MIGRATIONS
from assetlens.search.store.transcripts import TranscriptsMixin
from assetlens.search.store.vectors import VectorsMixin

__all__ = ["ASSET_COLUMNS", "MIGRATIONS", "Asset", "OcrStore", "Store", "Tag", "TextLine", "now_iso"]


class Store(
    AssetsMixin,
    VectorsMixin,
    TranscriptsMixin,
    JobsMixin,
    CatalogMixin,
    FilterReadsMixin,
    ImportsMixin,
    StoreBase,
):
    """A connection to one library's SQLite file.

    Args:
        path: The database file; created (with its folder) if missing.
        readonly: Open without write access (for searches).
    """

    @cached_property
    def ocr(self) -> OcrStore:
        """Text read in the library's pictures (``ocr_lines``, ``ocr_reads``)."""
        return OcrStore(self.db)

    @cached_property
    def duplicates(self) -> DuplicateStore:
        """Perceptual hashes, near-duplicate pairs and groups."""
        return DuplicateStore(self.db)

    @cached_property
    def learned(self) -> LearnedTagStore:
        """Tags learned from examples: their classifiers and examples."""
        return LearnedTagStore(self.db)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
