"""What the running API holds: the library, a pool of SQLite connections, one shared index.

sqlite3 connections must not be used by two threads at once (a transaction opened by one thread
would swallow another's statements), so every request thread borrows a :class:`Session` (its
own connection and a query engine on it) from a pool. The CLIP encoder and the FAISS index are
shared by all sessions: both are thread-safe (the index locks itself while it changes or is
searched, and uses its own connection only under that lock). No lock is ever held around CLIP
inference, so queries encode in parallel.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from assetlens.search.api.settings import ApiSettings
from assetlens.search.filters.columns import ColumnCache
from assetlens.search.library import LibraryCore
from assetlens.search.query import SearchEngine
from assetlens.search.store import Store
from assetlens.search.vectors.index import VectorIndex

if TYPE_CHECKING:
    from assetlens.search.api.auth import Authenticator
    from assetlens.search.api.batcher import TextBatcher
    from assetlens.search.api.jobs import JobRunner
    from assetlens.search.api.metrics import Metrics

T = TypeVar("T")


@dataclass
class Session:
    """One connection and a query engine on it; used by one thread at a time."""

    store: Store
    engine: SearchEngine


class SessionPool:
    """Up to ``size`` sessions, opened on demand; a borrower waits when all are out."""

    def __init__(self, factory: Callable[[], Session], size: int) -> None:
        self._factory, self._size = factory, size
        self._idle: queue.LifoQueue[Session] = queue.LifoQueue()
        self._opened: list[Session] = []
        self._lock = threading.Lock()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Borrow a session for the duration of the block."""
        session = self._take()
        try:
            yield session
        finally:
            self._idle.put(session)

    def _take(self) -> Session:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if len(self._opened) < self._size:
                session = self._factory()
                self._opened.append(session)
                return session
        return self._idle.get()

    def close(self) -> None:
        """Close every connection (call when no request runs any more)."""
        with self._lock:
            for session in self._opened:
                session.store.close()
            self._opened.clear()


@dataclass
class ApiState:
    """Everything the routes need, built in the app's lifespan.

    Attributes:
        settings: The API's settings.
        library: The library served.
        index: The index shared by every session.
        columns: The filter column cache shared by every session.
        pool: Sessions for request threads.
        auth: Checks API keys.
        batcher: Encodes concurrent query texts together.
        jobs: Queues and runs ingest and tag jobs (with the worker the app was given).
        metrics: Request and job counters.
        model_error: Why the model could not be loaded at startup (None: loaded).
        ready: Startup finished.
    """

    settings: ApiSettings
    library: LibraryCore
    index: VectorIndex
    columns: ColumnCache
    pool: SessionPool
    auth: Authenticator
    batcher: TextBatcher
    jobs: JobRunner
    metrics: Metrics
    model_error: str | None = None
    ready: bool = False

    @property
    def data_dir(self) -> Path:
        return self.library.settings.data_dir

    def run(self, work: Callable[[Session], T]) -> T:
        """Run ``work`` with a borrowed session (call from a worker thread, not the event loop)."""
        with self.pool.session() as session:
            return work(session)
