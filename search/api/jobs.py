"""Ingest and tag jobs, run as ``python -m assetlens.enrich`` subprocesses.

A subprocess keeps the import rule (``search`` never imports ``enrich``), isolates crashes and
memory of decoding, and is exactly what the CLI runs. The API records each request as a row of
the store's ``jobs`` table (kind ``api:ingest`` or ``api:tag``): its id is the job id clients
poll, returned before the subprocess even starts. The subprocess starts its own ``ingest`` job
row; its id (``run_job_id``) is linked when the ingest's JSON report arrives, or earlier by its
``roots`` while it runs, and its counts and failures are reported through the API's job.

At most ``max_jobs`` subprocesses run at once; the others wait as ``queued``. On shutdown the
running ones are interrupted (ingest keeps every finished batch) and waiting ones are dropped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from assetlens.search.api.metrics import Metrics
from assetlens.search.catalog.meta import set_meta
from assetlens.search.errors import SearchError
from assetlens.search.store import Store

log = logging.getLogger("assetlens.api")

KINDS = {"ingest": "api:ingest", "tag": "api:tag"}
FINISHED = ("done", "failed", "interrupted")
ERROR_TAIL = 4000


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class JobRunner:
    """Starts, watches and reports jobs.

    Args:
        store: A connection of its own (used under the runner's lock).
        data_dir: The library (passed to the subprocess as ``--data-dir``).
        env: Extra environment for the subprocess (the model the API runs).
        metrics: Job counters.
        max_jobs: Subprocesses running at once.
        grace_s: On shutdown, how long running jobs get after an interrupt.
    """

    def __init__(
        self,
        store: Store,
        data_dir: Path,
        env: Mapping[str, str],
        metrics: Metrics,
        max_jobs: int = 1,
        grace_s: float = 10.0,
    ) -> None:
        self.store, self.data_dir, self.env, self.metrics = store, data_dir, dict(env), metrics
        self.grace_s = grace_s
        self._lock = threading.RLock()
        self._slots = threading.Semaphore(max_jobs)
        self._closing = threading.Event()
        self._processes: dict[int, subprocess.Popen[bytes]] = {}
        self._threads: list[threading.Thread] = []

    # --- submitting --------------------------------------------------------------------------

    def submit_ingest(
        self, paths: list[str], flags: list[str], uploads: Mapping[str, str] | None = None
    ) -> int:
        """Queue ``assetlens ingest FLAGS -- PATHS``; ``uploads`` maps stored paths to client file names."""
        # --wait: a job submitted while another writer holds the library queues behind it.
        argv = ["ingest", "--json", "--wait", *flags, "--", *paths]
        return self._submit("ingest", argv, {"paths": paths, "flags": flags, "uploads": dict(uploads or {})})

    def submit_tag(self, vocab: Path | None) -> int:
        """Queue ``assetlens tag [--vocab FILE]``."""
        argv = ["tag", "--json", "--wait", *(["--vocab", str(vocab)] if vocab else [])]
        return self._submit("tag", argv, {"vocab": str(vocab) if vocab else None})

    def _submit(self, kind: str, argv: list[str], args: dict[str, Any]) -> int:
        args = {**args, "server_pid": os.getpid()}
        with self._lock, self.store.transaction():
            job_id = self.store.start_job(KINDS[kind], args)
            self.store.update_job(job_id, status="queued")
        self.metrics.job_started(kind)
        thread = threading.Thread(
            target=self._run, args=(job_id, kind, argv, args), daemon=True, name=f"assetlens-job-{job_id}"
        )
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return job_id

    # --- running -----------------------------------------------------------------------------

    def _run(self, job_id: int, kind: str, argv: list[str], args: dict[str, Any]) -> None:
        while not self._slots.acquire(timeout=0.2):
            if self._closing.is_set():
                self._finish(job_id, kind, args, "interrupted", {}, "the server stopped before the job ran")
                return
        try:
            self._execute(job_id, kind, argv, args)
        except Exception as exc:  # a bug here must not leave the job running forever
            log.exception("job %s failed to run", job_id)
            self._finish(job_id, kind, args, "failed", {}, f"internal error: {exc}")
        finally:
            self._slots.release()

    def _execute(self, job_id: int, kind: str, argv: list[str], args: dict[str, Any]) -> None:
        if self._closing.is_set():
            self._finish(job_id, kind, args, "interrupted", {}, "the server stopped before the job ran")
            return
        command = [sys.executable, "-m", "assetlens.enrich", "--data-dir", str(self.data_dir), *argv]
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **self.env},
            start_new_session=True,
        )
        with self._lock:
            self._processes[job_id] = process
            args = {**args, "pid": process.pid, "argv": command[3:]}
            self.store.update_job(job_id, status="running", args=args)
        stdout, stderr = process.communicate()
        with self._lock:
            self._processes.pop(job_id, None)
        report: dict[str, Any] = {}
        try:
            parsed = json.loads(stdout or b"{}")
            report = parsed if isinstance(parsed, dict) else {}
        except ValueError:
            pass
        error = stderr.decode("utf-8", "replace")[-ERROR_TAIL:].strip() or None
        if process.returncode == 0:
            status = "interrupted" if report.get("interrupted") else "done"
        else:
            status = "interrupted" if process.returncode in (130, -signal.SIGINT) else "failed"
        if isinstance(report.get("job_id"), int):
            args["run_job_id"] = report["job_id"]
        counts = {k: v for k, v in report.items() if k != "job_id" and isinstance(v, int | bool)}
        if status == "done" and args.get("uploads"):
            self._name_uploads(args["uploads"])
        self._finish(job_id, kind, args, status, counts, None if status == "done" else error)
        if args.get("vocab"):
            Path(args["vocab"]).unlink(missing_ok=True)

    def _name_uploads(self, uploads: Mapping[str, str]) -> None:
        """Record each uploaded file's original name in its asset's meta (``original_filename``)."""
        with self._lock:
            for stored, original in uploads.items():
                asset = self.store.asset_by_uri(stored)
                if asset is None:
                    continue
                try:
                    set_meta(self.store, asset.id, {"original_filename": original}, infer=False)
                except SearchError as exc:  # a declared type that does not fit: the name is a nicety
                    log.warning("cannot record the original name of asset %s: %s", asset.id, exc)

    def _finish(
        self,
        job_id: int,
        kind: str,
        args: dict[str, Any],
        status: str,
        counts: dict[str, Any],
        error: str | None,
    ) -> None:
        if error:
            args = {**args, "error": error}
        with self._lock:
            self.store.update_job(job_id, status=status, args=args, counts=counts, finished=True)
        self.metrics.job_finished(kind, status)

    # --- reporting ---------------------------------------------------------------------------

    def describe(self, job_id: int) -> dict[str, Any] | None:
        """A job as the API reports it (any job of the store: API, CLI, transcribe...), or None."""
        with self._lock:
            row = self.store.job(job_id)
            if row is None:
                return None
            args = row["args"] if isinstance(row["args"], dict) else {}
            counts = row["counts"] if isinstance(row["counts"], dict) else {}
            run_id = args.get("run_job_id")
            if row["kind"] == KINDS["ingest"] and run_id is None and row["status"] == "running":
                run_id = self._find_run(job_id, args)
            source_id = run_id if isinstance(run_id, int) else job_id
            failures = self.store.failures(source_id, limit=100)
            failure_count = self.store.count_job_failures(source_id)
        kind = str(row["kind"])
        doc: dict[str, Any] = {
            "id": job_id,
            "kind": kind.removeprefix("api:"),
            "source": "api" if kind.startswith("api:") else "cli",
            "status": row["status"],
            "started_at": row["started_at"],
            "finished_at": row["finished_at"],
            "counts": {k: v for k, v in counts.items() if isinstance(v, int | bool)},
            "failures": [{k: f[k] for k in ("uri", "stage", "reason", "at")} for f in failures],
            "failure_count": failure_count,
            "run_job_id": run_id if isinstance(run_id, int) else None,
            "error": args.get("error") if isinstance(args.get("error"), str) else None,
        }
        return doc

    def _find_run(self, job_id: int, args: Mapping[str, Any]) -> int | None:
        """The ingest job a running subprocess started: the first one after ours with our paths."""
        paths = args.get("paths")
        for candidate in self.store.jobs_after("ingest", job_id):
            if candidate["args"].get("roots") == paths:
                return int(candidate["id"])
        return None

    def running(self) -> int:
        with self._lock:
            return len(self._processes)

    # --- lifecycle ---------------------------------------------------------------------------

    def recover(self) -> None:
        """Mark jobs whose server and subprocess are both gone (a crash, a kill) as interrupted."""
        with self._lock:
            for job in self.store.jobs_with_status(list(KINDS.values()), ["queued", "running"]):
                args = job["args"] if isinstance(job["args"], dict) else {}
                if _alive(args.get("server_pid")) or _alive(args.get("pid")):
                    continue
                args = {**args, "error": "the server stopped while the job was pending or running"}
                self.store.update_job(job["id"], status="interrupted", args=args, finished=True)

    def shutdown(self) -> None:
        """Interrupt running subprocesses (finished batches are kept), drop queued jobs, wait."""
        self._closing.set()
        with self._lock:
            processes = list(self._processes.values())
        for process in processes:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGINT)
        deadline = time.monotonic() + self.grace_s
        for process in processes:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=max(1.0, deadline - time.monotonic()))
