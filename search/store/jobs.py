"""Jobs, failures and API keys in the store: starting, updating and finishing ingest and API jobs,
recording the per-file failures of a job, the listings the HTTP API shows (``search.api``), and the
API keys it checks (kept only as hashes).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from assetlens.search.store.base import StoreBase
from assetlens.search.store.records import now_iso


class JobsMixin(StoreBase):
    """Rows of ``jobs``, ``failures`` and ``api_keys``."""

    # --- jobs and failures -----------------------------------------------------------------

    def start_job(self, kind: str, args: dict[str, Any]) -> int:
        cur = self.db.execute(
            "INSERT INTO jobs (kind, status, started_at, args) VALUES (?, 'running', ?, ?)",
            (kind, now_iso(), json.dumps(args)),
        )
        return int(cur.lastrowid or 0)

    def finish_job(self, job_id: int, status: str, counts: dict[str, int]) -> None:
        self.db.execute(
            "UPDATE jobs SET status = ?, finished_at = ?, counts = ? WHERE id = ?",
            (status, now_iso(), json.dumps(counts), job_id),
        )

    def job_progress(self, job_id: int, counts: dict[str, int]) -> None:
        """Record a running job's counts so far (readers such as the API show progress)."""
        self.db.execute("UPDATE jobs SET counts = ? WHERE id = ?", (json.dumps(counts), job_id))

    @contextmanager
    def job_batch(
        self, job_id: int, counts: Callable[[], Mapping[str, Any]], undo: Callable[[], None]
    ) -> Iterator[None]:
        """One batch of a job in one transaction, inside which the caller records the job's
        progress (:meth:`job_progress`) as ``counts()``.

        A batch cut short (a Ctrl-C) is rolled back, and ``undo`` takes its files back out of the
        caller's counts, unless it committed after all: a Ctrl-C that lands during COMMIT is
        raised only once COMMIT is done, and the progress stored then tells.
        """
        try:
            with self.transaction():
                yield
        except BaseException:
            if not self._progress_recorded(job_id, counts()):
                undo()
            raise

    def _progress_recorded(self, job_id: int, counts: Mapping[str, Any]) -> bool:
        try:
            job = self.job(job_id)
        except sqlite3.Error:
            return False
        return job is not None and all(job["counts"].get(k) == v for k, v in counts.items())

    def record_failure(self, job_id: int, uri: str, stage: str, reason: str) -> None:
        self.db.execute(
            "INSERT INTO failures (job_id, uri, stage, reason, at) VALUES (?, ?, ?, ?, ?)",
            (job_id, uri, stage, reason, now_iso()),
        )

    def count_failures(self) -> int:
        return int(self.db.execute("SELECT count(*) FROM failures").fetchone()[0])

    def failures(self, job_id: int | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """Recorded failures, newest first (of one job, or of all)."""
        where, params = ("WHERE job_id = ?", [job_id]) if job_id is not None else ("", [])
        rows = self.db.execute(
            f"SELECT job_id, uri, stage, reason, at FROM failures {where} ORDER BY id DESC LIMIT ?",
            [*params, limit],
        )
        return [dict(r) for r in rows]

    def last_job(self) -> dict[str, Any] | None:
        row = self.db.execute("SELECT * FROM jobs ORDER BY id DESC LIMIT 1").fetchone()
        return None if row is None else dict(row)

    def job(self, job_id: int) -> dict[str, Any] | None:
        """One job row with ``args`` and ``counts`` decoded, or None."""
        row = self.db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            return None
        return {**dict(row), "args": json.loads(row["args"]), "counts": json.loads(row["counts"])}

    def update_job(
        self,
        job_id: int,
        *,
        status: str | None = None,
        args: dict[str, Any] | None = None,
        counts: dict[str, Any] | None = None,
        finished: bool = False,
    ) -> None:
        """Change some fields of a job; ``finished`` stamps ``finished_at``."""
        values: dict[str, Any] = {}
        if status is not None:
            values["status"] = status
        if args is not None:
            values["args"] = json.dumps(args)
        if counts is not None:
            values["counts"] = json.dumps(counts)
        if finished:
            values["finished_at"] = now_iso()
        if values:
            assignments = ", ".join(f"{k} = ?" for k in values)
            self.db.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", [*values.values(), job_id])

    def jobs_after(self, kind: str, after_id: int, limit: int = 100) -> list[dict[str, Any]]:
        """Jobs of one kind with ids above ``after_id``, oldest first, ``args`` decoded."""
        rows = self.db.execute(
            "SELECT id, status, args FROM jobs WHERE kind = ? AND id > ? ORDER BY id LIMIT ?",
            (kind, after_id, limit),
        )
        return [{"id": int(r[0]), "status": r[1], "args": json.loads(r[2])} for r in rows]

    def jobs_with_status(self, kinds: Sequence[str], statuses: Sequence[str]) -> list[dict[str, Any]]:
        """Jobs of these kinds in these statuses, ``args`` decoded."""
        if not kinds or not statuses:
            return []
        rows = self.db.execute(
            f"SELECT id, kind, status, args FROM jobs WHERE kind IN ({','.join('?' * len(kinds))}) "
            f"AND status IN ({','.join('?' * len(statuses))}) ORDER BY id",
            [*kinds, *statuses],
        )
        return [{"id": int(r[0]), "kind": r[1], "status": r[2], "args": json.loads(r[3])} for r in rows]

    def job_counts(self) -> list[tuple[str, str, int]]:
        """``(kind, status, count)`` over every job."""
        rows = self.db.execute("SELECT kind, status, count(*) FROM jobs GROUP BY kind, status ORDER BY 1, 2")
        return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]

    def count_job_failures(self, job_id: int) -> int:
        return int(self.db.execute("SELECT count(*) FROM failures WHERE job_id = ?", (job_id,)).fetchone()[0])

    # --- HTTP API keys (search.api) --------------------------------------------------------

    def create_api_key(self, name: str, key_hash: str, scopes: str) -> int:
        """Record a new API key by its hash; returns its id."""
        cur = self.db.execute(
            "INSERT INTO api_keys (name, key_hash, scopes, created_at) VALUES (?, ?, ?, ?)",
            (name, key_hash, scopes, now_iso()),
        )
        return int(cur.lastrowid or 0)

    def api_key_by_hash(self, key_hash: str) -> dict[str, Any] | None:
        """The key row (revoked or not) with this hash, or None."""
        row = self.db.execute(
            "SELECT id, name, key_hash, scopes, created_at, revoked_at, last_used_at FROM api_keys "
            "WHERE key_hash = ?",
            (key_hash,),
        ).fetchone()
        return None if row is None else dict(row)

    def api_keys(self) -> list[dict[str, Any]]:
        """Every API key, oldest first, without its hash."""
        rows = self.db.execute(
            "SELECT id, name, scopes, created_at, revoked_at, last_used_at FROM api_keys ORDER BY id"
        )
        return [dict(r) for r in rows]

    def revoke_api_key(self, key_id: int) -> bool:
        """Revoke a key (a revoked key stays revoked); False when there is no key with that id."""
        self.db.execute(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (now_iso(), key_id)
        )
        return self.db.execute("SELECT 1 FROM api_keys WHERE id = ?", (key_id,)).fetchone() is not None

    def touch_api_key(self, key_id: int) -> None:
        """Record that a key was just used."""
        self.db.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (now_iso(), key_id))
