"""The local executor: decode threads feed the model stages, each in a thread of its own.

Pillow and PyAV release the GIL while decoding and scaling, so a few decode threads keep the
network busy. The stages after them take each batch in turn, each in its own thread, passing
batches on through queues of one: CLIP embeds batch N+1 while OCR reads batch N and Whisper
transcribes batch N-1, as the actor pools of a Ray cluster would. Serial, the single-threaded
stages (OCR, a long transcription) left the other cores idle: on an idle 2-core machine an
ingest with ``--ocr auto`` kept 0.59x the images/s of ``--ocr off`` at 1.5 cores busy;
pipelined, 0.90-0.93x when a core was free (``BENCHMARKS.md``, OCR). Batches hold about
``batch_size`` frames (images plus keyframes, or pictures to read) and at most
:data:`MAX_FILES` files; at most one batch waits between two stages, so memory stays bounded.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from assetlens.enrich.stages import Stage
from assetlens.enrich.work import FileWork

MAX_FILES = 512  # a batch of sound files (no frames) still ends somewhere
_POLL_S = 0.1  # how often a thread waiting on a queue checks that the run still goes on


class _Done:
    """The end of the stream, or the error that ended it (raised where the batches are consumed)."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class LocalExecutor:
    """Runs stages in this process.

    Args:
        workers: Threads for the per-file stages at the head of the chain (decoding).
        batch_size: Frames per batch handed to the model stages.
    """

    def __init__(self, workers: int, batch_size: int) -> None:
        self.workers, self.batch_size = workers, batch_size

    def run(self, stages: Sequence[Stage], work: Sequence[FileWork]) -> Iterator[list[FileWork]]:
        """Every file through every stage, yielded batch by batch, in order."""
        head = 0
        while head < len(stages) and not stages[head].resources.model:
            head += 1
        per_file, per_batch = stages[:head], stages[head:]
        for stage in stages:
            stage.open()
        stop = threading.Event()
        links: list[queue.Queue[Any]] = [queue.Queue(maxsize=1) for _ in range(len(per_batch) + 1)]
        threads = [threading.Thread(target=self._feed, args=(per_file, work, links[0], stop), daemon=True)]
        threads += [
            threading.Thread(target=_serve, args=(stage, links[i], links[i + 1], stop), daemon=True)
            for i, stage in enumerate(per_batch)
        ]
        for thread in threads:
            thread.start()
        try:
            while (item := _get(links[-1], stop)) is not None and not isinstance(item, _Done):
                yield item
            if isinstance(item, _Done) and item.error is not None:
                raise item.error
        finally:
            # Ctrl-C, an error, or a consumer that stopped early: every thread stops after the
            # batch it holds (a decode in flight, a model call), and nothing more is read. They
            # are waited for: a thread still inside a model when the interpreter exits aborts it.
            stop.set()
            for thread in threads:
                thread.join()

    def _feed(
        self, stages: Sequence[Stage], work: Sequence[FileWork], out: queue.Queue[Any], stop: threading.Event
    ) -> None:
        """Decode files in threads and put them, in order, into batches for the model stages."""
        window = max(self.batch_size * 2, self.workers * 2)
        pending: list[FileWork] = []

        def collect(future: Future[FileWork]) -> bool:
            """Add a decoded file to the batch, passing the batch on when full; False: stopped."""
            nonlocal pending
            pending.append(future.result())
            if not self._full(pending):
                return True
            batch, pending = pending, []
            return _put(out, batch, stop)

        with ThreadPoolExecutor(self.workers, thread_name_prefix="decode") as pool:
            futures: deque[Future[FileWork]] = deque()
            try:
                for w in work:
                    futures.append(pool.submit(_through, stages, w))
                    if len(futures) >= window and not collect(futures.popleft()):
                        return
                while futures:
                    if not collect(futures.popleft()):
                        return
                if not pending or _put(out, pending, stop):
                    _put(out, _Done(), stop)
            except BaseException as exc:
                _put(out, _Done(exc), stop)
            finally:
                for future in futures:
                    future.cancel()

    def close(self) -> None:
        """Nothing held between runs: each run's threads end with it."""

    def _full(self, pending: list[FileWork]) -> bool:
        return sum(w.frames for w in pending) >= self.batch_size or len(pending) >= MAX_FILES


def _serve(stage: Stage, inbox: queue.Queue[Any], out: queue.Queue[Any], stop: threading.Event) -> None:
    """Run one stage on every batch that arrives, and pass it on (the end or an error passes as is)."""
    while (item := _get(inbox, stop)) is not None:
        if not isinstance(item, _Done):
            try:
                item = stage(item)
            except BaseException as exc:
                item = _Done(exc)
        if not _put(out, item, stop) or isinstance(item, _Done):
            return


def _get(link: queue.Queue[Any], stop: threading.Event) -> Any:
    """The next item, or None once the run is stopped."""
    while not stop.is_set():
        try:
            return link.get(timeout=_POLL_S)
        except queue.Empty:
            continue
    return None


def _put(link: queue.Queue[Any], item: Any, stop: threading.Event) -> bool:
    """Pass an item on; False once the run is stopped."""
    while not stop.is_set():
        try:
            link.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False


def _through(stages: Sequence[Stage], w: FileWork) -> FileWork:
    for stage in stages:
        w = stage([w])[0]
    return w
