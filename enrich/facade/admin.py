"""The housekeeping side of :class:`~assetlens.enrich.facade.Library`: failures, vector index, API keys."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, get_args

from assetlens.enrich.facade.catalog import LibraryParts
from assetlens.search.api.keys import SCOPES, create_key, key_doc
from assetlens.search.errors import QueryError

if TYPE_CHECKING:
    from assetlens.search.vectors.build import BuildProgress

IndexKind = Literal["auto", "flat", "hnsw", "ivf", "ivfpq"]
Scope = Literal["read", "write", "admin"]


class AdminMethods(LibraryParts):
    """Failures, index and keys (mixed into :class:`Library`)."""

    def failures(self, job_id: int | None = None, *, limit: int = 1000) -> list[dict[str, Any]]:
        """Files that could not be processed: ``uri, stage, reason, at, job_id``, newest first.

        Args:
            job_id: Only this run's (an :class:`IngestReport`'s ``job_id``); default every run's.
            limit: At most this many.
        """
        return self._existing().store.failures(job_id, limit=limit)

    def index_status(self) -> dict[str, Any]:
        """The vector index: kind, vectors, and whether it is level with the store."""
        index = self._existing().index
        index.sync(save=False)
        return dict(index.status())

    def rebuild_index(
        self, kind: IndexKind | None = None, *, progress: Callable[[BuildProgress], None] | None = None
    ) -> dict[str, Any]:
        """Rebuild the vector index from every stored vector and save it; returns its status.

        ``kind`` forces an index kind (default: by size). Searches of other processes go on
        against the old index meanwhile.
        """
        if kind not in (None, *get_args(IndexKind)):
            raise QueryError(f"unknown index kind {kind!r}: use one of {', '.join(get_args(IndexKind))}")
        index = self._existing().index
        index.build(kind, progress=progress)
        return dict(index.status())

    def create_api_key(self, scope: Scope, name: str = "") -> tuple[int, str]:
        """Create a key of the HTTP API; returns ``(id, key)``. Only its hash is kept: show it now.

        Raises:
            QueryError: An unknown scope.
        """
        if scope not in SCOPES:
            raise QueryError(f"unknown scope {scope!r}: use one of {', '.join(SCOPES)}")
        store = self.core.store
        with store.transaction():
            return create_key(store, scope, name)

    def api_keys(self) -> list[dict[str, Any]]:
        """The HTTP API's keys: ``id, name, scopes, created_at, revoked_at, last_used_at`` (never the key)."""
        if not self._exists():
            return []
        return [key_doc(row) for row in self.core.store.api_keys()]

    def revoke_api_key(self, key_id: int) -> bool:
        """Revoke a key: the API refuses it from the next request on. False: no such key."""
        return bool(self._existing().store.revoke_api_key(key_id))
