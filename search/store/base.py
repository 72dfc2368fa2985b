"""The connection every part of the store shares: :class:`StoreBase` opens the SQLite file (pragmas,
WAL), runs the migrations of :mod:`search.store.schema`, groups writes with :meth:`StoreBase.transaction`
and reads and writes the ``state`` table (vector epoch, model id). The concern mixins of the package
derive from it, and :func:`_chunks` cuts id lists for their ``IN (...)`` queries.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from assetlens.search.errors import StoreError
from assetlens.search.store.bulk_upkeep import BEGIN_DEFERRED, CATCH_UP_WORDS
from assetlens.search.store.schema import MIGRATIONS, SQL_FUNCTIONS, _split_sql

PAGE_SIZE = 16384  # bytes per page of a new library's file


class StoreBase:
    """Connection, migrations, transactions and ``state`` of one library file (see :class:`Store`)."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        if readonly and not self.path.exists():
            raise StoreError(f"no library at {self.path}: run `assetlens ingest PATH` first")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._defer_words = False  # once the schema has `touched` (the migrations come first)
        try:
            uri = f"file:{self.path}?mode=ro" if readonly else f"file:{self.path}"
            self.db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
            self.db.row_factory = sqlite3.Row
            for name, (arity, function) in SQL_FUNCTIONS.items():
                self.db.create_function(name, arity, function, deterministic=True)
            self.db.execute("PRAGMA busy_timeout = 30000")
            self.db.execute("PRAGMA foreign_keys = ON")
            if not readonly:
                if self.db.execute("PRAGMA page_count").fetchone()[0] == 0:
                    # A new library: 16 KB pages (SQLite's default is 4 KB). Each committed page
                    # is written to the log and copied back, and at 1-2 KB per asset (a vector
                    # alone is 1 KB) per-page work made a bulk commit a third slower with 4 KB
                    # pages (BENCHMARKS.md, issue 12). An existing library keeps its size (WAL
                    # cannot change it).
                    self.db.execute(f"PRAGMA page_size = {PAGE_SIZE}")
                self.db.execute("PRAGMA journal_mode = WAL")
                # NORMAL is durable across application crashes in WAL mode; only an OS crash
                # can lose the last commits, never corrupt the file.
                self.db.execute("PRAGMA synchronous = NORMAL")
                self._migrate()
                self._defer_words = True
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot open the library database {self.path}: {exc}") from exc

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this AssetLens "
                f"({len(MIGRATIONS)}): upgrade AssetLens"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.transaction():
                if self.schema_version >= number:
                    continue  # another process applied it while this one waited for the write lock
                for statement in _split_sql(script):
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {number}")

    @property
    def schema_version(self) -> int:
        """Schema version of the open file."""
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic write: everything inside commits together or not at all.

        The full-text words and change log of the assets, tags and OCR lines written inside are
        brought up to date once per asset at the end, not once per row (:mod:`.bulk_upkeep`).
        """
        nested = self.db.in_transaction  # then BEGIN fails, and the outer one is not ours to end
        try:
            # BEGIN inside the try: a Ctrl-C landing just after it must roll back too, or the
            # open transaction would make every later write of this connection fail.
            self.db.execute("BEGIN IMMEDIATE")
            if self._defer_words:
                self.db.execute(BEGIN_DEFERRED)
            yield
            if self._defer_words:
                for statement in CATCH_UP_WORDS:
                    self.db.execute(statement)
            self.db.execute("COMMIT")
        except BaseException:
            # A full disk makes SQLite roll back by itself: a second ROLLBACK would then fail
            # with "no transaction is active" and hide the real error.
            if self.db.in_transaction and not nested:
                with suppress(sqlite3.Error):
                    self.db.execute("ROLLBACK")
            raise

    # --- state -----------------------------------------------------------------------------

    def get_state(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_state(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (key, value))

    @property
    def vector_epoch(self) -> int:
        """Grows with every vector delete; an index built at another epoch is stale."""
        return int(self.get_state("vector_epoch") or 0)

    @property
    def model_id(self) -> str | None:
        """The model whose vectors this store holds (None while it holds none)."""
        return self.get_state("model")


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
