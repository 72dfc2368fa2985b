"""The HTTP API's ingest and tag jobs, run by the facade in worker processes; the served app.

:class:`ProcessJobWorker` is the :class:`~assetlens.search.api.jobs.JobWorker` that ``assetlens
serve`` gives the API (``search`` defines the contract and may not import ``enrich``). Each job
runs in a fresh process (multiprocessing ``spawn``): decoding and the models' memory stay out
of the server, a crash costs one job, and a job can be interrupted like ``assetlens ingest``
with Ctrl-C, keeping its finished batches. In and out go typed records over a pipe: the
:data:`~assetlens.search.api.jobs.JobRequest` and the :class:`LibrarySettings` of the server
(never environment variables), then :class:`JobUpdate` records after each batch and one
:class:`JobOutcome`.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Literal

from assetlens.search.api.jobs import IngestJob, JobOutcome, JobRequest, JobUpdate

if TYPE_CHECKING:
    from fastapi import FastAPI

    from assetlens.enrich.facade import Library
    from assetlens.enrich.facade.settings import LibrarySettings
    from assetlens.search.api.settings import ApiSettings

ERROR_TAIL = 4000  # characters of an unexpected error's traceback kept in the job


class ProcessJobWorker:
    """Starts each job in its own worker process, with the server's settings.

    Args:
        settings: The library and the settings the jobs run with (the server's own).
    """

    def __init__(self, settings: LibrarySettings) -> None:
        self.settings = settings
        self._context = multiprocessing.get_context("spawn")  # no fork of a threaded server

    def start(self, request: JobRequest) -> WorkerProcess:
        """Start a worker process for ``request``; returns at once."""
        reader, writer = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_work, args=(self.settings, request, writer), name=f"assetlens-{request.kind}"
        )
        process.start()
        writer.close()  # the child holds the only writer: its exit ends the pipe
        return WorkerProcess(process, reader)


class WorkerProcess:
    """One job's worker process, seen from the server (a :class:`~assetlens.search.api.jobs.RunningJob`)."""

    def __init__(self, process: BaseProcess, channel: Connection) -> None:
        self._process, self._channel = process, channel
        self._interrupted = False

    @property
    def pid(self) -> int:
        assert self._process.pid is not None  # started
        return self._process.pid

    def result(self, on_update: Callable[[JobUpdate], None]) -> JobOutcome:
        """Pass updates on until the outcome arrives or the process ends without one."""
        last: JobUpdate | None = None
        try:
            while True:
                message = self._channel.recv()
                if isinstance(message, JobOutcome):
                    return message
                last = message
                on_update(message)
        except EOFError:  # the process ended without an outcome: killed, crashed, or stopped early
            self._process.join()
            status: Literal["interrupted", "failed"] = "interrupted" if self._interrupted else "failed"
            return JobOutcome(
                status,
                dict(last.counts) if last else {},
                last.run_job_id if last else None,
                f"the worker process ended without a report (exit code {self._process.exitcode})",
            )
        finally:
            self._channel.close()
            self._process.join()

    def interrupt(self) -> None:
        """SIGINT, as Ctrl-C: an ingest finishes its batch in flight, keeps it, and reports."""
        self._interrupted = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self.pid, signal.SIGINT)

    def wait(self, timeout: float) -> bool:
        self._process.join(timeout)
        return self._process.exitcode is not None

    def kill(self) -> None:
        self._process.kill()


def _work(settings: LibrarySettings, request: JobRequest, channel: Connection) -> None:
    """The worker process: run one job through the facade and send its outcome."""
    # Its own session: a Ctrl-C at the server's terminal reaches the server, which interrupts
    # its jobs once; a second SIGINT in the middle of saving a batch would lose that batch.
    os.setsid()
    from assetlens.enrich.facade import Library  # here, after setsid: it loads for seconds

    last: JobUpdate | None = None

    def send(update: JobUpdate) -> None:
        nonlocal last
        last = update
        channel.send(update)

    try:
        with Library(settings=settings) as lib:
            outcome = _run(lib, request, send)
    except KeyboardInterrupt:
        error = "interrupted: finished batches are kept; run the job again to resume"
        outcome = _stopped(settings, "interrupted", last, error)
    except Exception as exc:
        outcome = _stopped(settings, "failed", last, _describe(exc))
    channel.send(outcome)
    channel.close()


def _stopped(
    settings: LibrarySettings, status: Literal["failed", "interrupted"], last: JobUpdate | None, error: str
) -> JobOutcome:
    """The outcome of a run that stopped early, with the counts its own job row kept."""
    from assetlens.enrich.facade import Library

    if last is None:
        return JobOutcome(status, {}, None, error)
    try:
        with Library(settings=settings) as lib:
            row = lib.job(last.run_job_id) or {}
    except Exception:  # the library itself may be what failed: the last update will do
        row = {}
    counts = {**last.counts, **row.get("counts", {}), "interrupted": status == "interrupted"}
    return JobOutcome(status, counts, last.run_job_id, error)


def _run(lib: Library, request: JobRequest, send: Callable[[JobUpdate], None]) -> JobOutcome:
    """Run the request on the library (waiting for another writer rather than refusing)."""
    if isinstance(request, IngestJob):
        report = lib.ingest(
            list(request.paths), force=request.force, prune=request.prune, transcribe=request.transcribe,
            wait=True, progress=lambda p: send(JobUpdate(p.job_id, {"done": p.done, "total": p.total})),
        )  # fmt: skip
        counts = {k: v for k, v in report.as_dict().items() if k != "job_id"}
        return JobOutcome("done", counts, report.job_id)
    retagged = lib.retag(vocab=request.vocab, wait=True)
    return JobOutcome("done", {"retagged": retagged})


def _describe(exc: BaseException) -> str:
    """One line for an AssetLens error (its message says what to do); the traceback for a bug."""
    from assetlens.models.errors import AssetLensError

    if isinstance(exc, AssetLensError):
        return str(exc)
    return "".join(traceback.format_exception(exc))[-ERROR_TAIL:].strip()


# --- the served app ---------------------------------------------------------------------------


def api_app(settings: LibrarySettings, api: ApiSettings) -> FastAPI:
    """The HTTP API over a library, whose ingest and tag jobs run in worker processes."""
    from assetlens.search.api.app import create_app
    from assetlens.search.library import LibraryCore

    core = LibraryCore(settings.library, settings.models)
    return create_app(api, core, ProcessJobWorker(settings), own_library=True)


def app_from_env() -> FastAPI:
    """The app of each ``assetlens serve --workers N`` process (uvicorn imports it by name).

    uvicorn starts those processes by itself, so this is the one place where the settings come
    from the environment (``serve`` sets ``ASSETLENS_DATA_DIR`` and ``ASSETLENS_CLIP_MODEL``).
    """
    from assetlens.enrich.facade.settings import LibrarySettings
    from assetlens.search.api.settings import ApiSettings

    return api_app(LibrarySettings.load(), ApiSettings())
