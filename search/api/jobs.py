"""Ingest and tag jobs of the HTTP API: typed requests, queued and run by a worker the server is given.

``search`` never imports ``enrich``, yet the jobs run the enrichment pipeline. So this module
defines the contract (a job request is a frozen :data:`JobRequest`; a :class:`JobWorker` starts
it and a :class:`RunningJob` reports :class:`JobUpdate` records and one :class:`JobOutcome`),
and the server that has the pipeline injects the worker (``assetlens serve`` gives
:class:`assetlens.enrich.jobs.ProcessJobWorker`, which runs the facade in a worker process).

The API records each request as a row of the store's ``jobs`` table (kind ``api:ingest`` or
``api:tag``): its id is the job id clients poll, returned before the work even starts. An
ingest starts its own ``ingest`` job row; its id (``run_job_id``) is linked with the first
update, and its failures are reported through the API's job.

At most ``max_jobs`` jobs run at once; the others wait as ``queued``. On shutdown the running
ones are interrupted (an ingest keeps every finished batch) and waiting ones are dropped.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from assetlens.search.api.metrics import Metrics
from assetlens.search.catalog.meta import set_meta
from assetlens.search.errors import SearchError
from assetlens.search.store import Store

log = logging.getLogger("assetlens.api")

KINDS = {"ingest": "api:ingest", "tag": "api:tag"}
FINISHED = ("done", "failed", "interrupted")


@dataclass(frozen=True)
class IngestJob:
    """Ingest files or folders on the server (what ``assetlens ingest`` does).

    Attributes:
        paths: Absolute paths, already checked against the library roots.
        force: Re-embed unchanged files. prune: Remove assets under ``paths`` whose files are gone.
        transcribe: Transcribe speech.
        uploads: ``(stored path, client file name)`` of uploaded files, named in their assets'
            meta (``original_filename``) once ingested.
    """

    paths: tuple[str, ...]
    force: bool = False
    prune: bool = False
    transcribe: bool = True
    uploads: tuple[tuple[str, str], ...] = ()

    kind = "ingest"


@dataclass(frozen=True)
class TagJob:
    """Re-tag every asset from its stored vectors (what ``assetlens tag`` does).

    Attributes:
        vocab: A vocabulary file added to the default one and kept for later runs; the API
            writes it for the job and removes it afterwards.
    """

    vocab: Path | None = None

    kind = "tag"


JobRequest = IngestJob | TagJob


@dataclass(frozen=True)
class JobUpdate:
    """Where a running job stands: the run's own job row and its counts so far."""

    run_job_id: int
    counts: Mapping[str, int]


@dataclass(frozen=True)
class JobOutcome:
    """How a job ended.

    Attributes:
        status: ``done``, ``failed`` or ``interrupted`` (finished batches are kept).
        counts: What it did (an ingest's report, ``retagged`` for a tag job).
        run_job_id: The job row the run wrote (its failures are the job's).
        error: Why it failed or stopped.
    """

    status: Literal["done", "failed", "interrupted"]
    counts: Mapping[str, int | bool]
    run_job_id: int | None = None
    error: str | None = None


class RunningJob(Protocol):
    """A job a worker started."""

    @property
    def pid(self) -> int:
        """The process doing the work (recorded, so that recovery can tell it is gone)."""
        ...

    def result(self, on_update: Callable[[JobUpdate], None]) -> JobOutcome:
        """Wait for the job to end, passing its updates on; never raises for the job's own errors."""
        ...

    def interrupt(self) -> None:
        """Ask the job to stop (an ingest keeps its finished batches)."""
        ...

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the job to end; True when it has."""
        ...

    def kill(self) -> None:
        """Stop the job at once."""
        ...


class JobWorker(Protocol):
    """Runs job requests (``assetlens serve`` injects one that runs the enrichment facade)."""

    def start(self, request: JobRequest) -> RunningJob:
        """Start a job and return at once."""
        ...


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
    """Queues, starts, watches and reports jobs.

    Args:
        store: A connection of its own (used under the runner's lock).
        metrics: Job counters.
        worker: Runs the jobs; None: this server runs none (:attr:`available` is False).
        max_jobs: Jobs running at once.
        grace_s: On shutdown, how long running jobs get after an interrupt.
    """

    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        worker: JobWorker | None,
        max_jobs: int = 1,
        grace_s: float = 10.0,
    ) -> None:
        self.store, self.metrics, self.worker, self.grace_s = store, metrics, worker, grace_s
        self._lock = threading.RLock()
        self._slots = threading.Semaphore(max_jobs)
        self._closing = threading.Event()
        self._running: dict[int, RunningJob] = {}
        self._threads: list[threading.Thread] = []

    @property
    def available(self) -> bool:
        """Whether this server can run jobs."""
        return self.worker is not None

    # --- submitting --------------------------------------------------------------------------

    def submit(self, request: JobRequest) -> int:
        """Queue a job; returns the API job id at once."""
        args = {**_json_ready(asdict(request)), "server_pid": os.getpid()}
        with self._lock, self.store.transaction():
            job_id = self.store.start_job(KINDS[request.kind], args)
            self.store.update_job(job_id, status="queued")
        self.metrics.job_started(request.kind)
        thread = threading.Thread(
            target=self._run, args=(job_id, request, args), daemon=True, name=f"assetlens-job-{job_id}"
        )
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return job_id

    # --- running -----------------------------------------------------------------------------

    def _run(self, job_id: int, request: JobRequest, args: dict[str, Any]) -> None:
        try:
            while not self._slots.acquire(timeout=0.2):
                if self._closing.is_set():
                    self._finish(job_id, request, args, _NOT_RUN)
                    return
            try:
                self._execute(job_id, request, args)
            except Exception as exc:  # a bug here must not leave the job running forever
                log.exception("job %s failed to run", job_id)
                self._finish(job_id, request, args, JobOutcome("failed", {}, error=f"internal error: {exc}"))
            finally:
                self._slots.release()
        finally:
            if isinstance(request, TagJob) and request.vocab is not None:
                request.vocab.unlink(missing_ok=True)

    def _execute(self, job_id: int, request: JobRequest, args: dict[str, Any]) -> None:
        if self._closing.is_set() or self.worker is None:
            self._finish(job_id, request, args, _NOT_RUN)
            return
        running = self.worker.start(request)
        with self._lock:
            self._running[job_id] = running
            args = {**args, "pid": running.pid}
            self.store.update_job(job_id, status="running", args=args)
        if self._closing.is_set():  # shutdown began while it started: it interrupted the others
            running.interrupt()

        def on_update(update: JobUpdate) -> None:
            args["run_job_id"] = update.run_job_id
            with self._lock:
                self.store.update_job(job_id, args=args, counts=dict(update.counts))

        try:
            outcome = running.result(on_update)
        finally:
            with self._lock:
                self._running.pop(job_id, None)
        if isinstance(request, IngestJob) and request.uploads and outcome.status == "done":
            self._name_uploads(dict(request.uploads))
        self._finish(job_id, request, args, outcome)

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

    def _finish(self, job_id: int, request: JobRequest, args: dict[str, Any], outcome: JobOutcome) -> None:
        args = dict(args)
        if outcome.run_job_id is not None:
            args["run_job_id"] = outcome.run_job_id
        if outcome.error and outcome.status != "done":
            args["error"] = outcome.error
        counts = dict(outcome.counts)
        with self._lock:
            self.store.update_job(job_id, status=outcome.status, args=args, counts=counts, finished=True)
        self.metrics.job_finished(request.kind, outcome.status)

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
            source_id = run_id if isinstance(run_id, int) else job_id
            failures = self.store.failures(source_id, limit=100)
            failure_count = self.store.count_job_failures(source_id)
        kind = str(row["kind"])
        return {
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

    def running(self) -> int:
        with self._lock:
            return len(self._running)

    # --- lifecycle ---------------------------------------------------------------------------

    def recover(self) -> None:
        """Mark jobs whose server and worker are both gone (a crash, a kill) as interrupted."""
        with self._lock:
            for job in self.store.jobs_with_status(list(KINDS.values()), ["queued", "running"]):
                args = job["args"] if isinstance(job["args"], dict) else {}
                if _alive(args.get("server_pid")) or _alive(args.get("pid")):
                    continue
                args = {**args, "error": "the server stopped while the job was pending or running"}
                self.store.update_job(job["id"], status="interrupted", args=args, finished=True)

    def shutdown(self) -> None:
        """Interrupt running jobs (finished batches are kept), drop queued ones, wait."""
        self._closing.set()
        with self._lock:
            running = list(self._running.values())
        for job in running:
            job.interrupt()
        deadline = time.monotonic() + self.grace_s
        for job in running:
            if not job.wait(max(0.0, deadline - time.monotonic())):
                job.kill()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout=max(1.0, deadline - time.monotonic()))


_NOT_RUN = JobOutcome("interrupted", {}, error="the server stopped before the job ran")


def _json_ready(value: Any) -> Any:
    """A request as the job row's ``args`` (paths as strings, tuples as lists)."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    return str(value) if isinstance(value, Path) else value
