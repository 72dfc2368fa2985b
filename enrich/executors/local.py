"""The local executor: decode threads feed the model stages, which run in the calling thread.

Pillow and PyAV release the GIL while decoding and scaling, so a few decode threads keep the
network busy; the model stages then take each batch in turn. Batches hold about ``batch_size``
frames (images plus keyframes) and at most :data:`MAX_FILES` files.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from assetlens.enrich.stages import Stage
from assetlens.enrich.work import FileWork

MAX_FILES = 512  # a batch of sound files (no frames) still ends somewhere


class LocalExecutor:
    """Runs stages in this process.

    Args:
        workers: Threads for the per-file stages at the head of the chain (decoding).
        batch_size: Frames per batch handed to the model stages.
    """

    def __init__(self, workers: int, batch_size: int) -> None:
        self.workers, self.batch_size = workers, batch_size

    def run(self, stages: Sequence[Stage], work: Sequence[FileWork]) -> Iterator[list[FileWork]]:
        """Every file through every stage, yielded batch by batch."""
        head = 0
        while head < len(stages) and not stages[head].resources.model:
            head += 1
        per_file, per_batch = stages[:head], stages[head:]
        for stage in stages:
            stage.open()
        window = max(self.batch_size * 2, self.workers * 2)
        pending: list[FileWork] = []
        with ThreadPoolExecutor(self.workers, thread_name_prefix="decode") as pool:
            futures: deque[Future[FileWork]] = deque()
            try:
                for w in work:
                    futures.append(pool.submit(_through, per_file, w))
                    if len(futures) >= window:
                        pending.append(futures.popleft().result())
                        if self._full(pending):
                            yield _through_all(per_batch, pending)
                            pending = []
                while futures:
                    pending.append(futures.popleft().result())
                    if self._full(pending):
                        yield _through_all(per_batch, pending)
                        pending = []
                if pending:
                    yield _through_all(per_batch, pending)
            finally:
                for future in futures:
                    future.cancel()

    def close(self) -> None:
        """Nothing held between runs: each run's threads end with it."""

    def _full(self, pending: list[FileWork]) -> bool:
        return sum(w.frames for w in pending) >= self.batch_size or len(pending) >= MAX_FILES


def _through(stages: Sequence[Stage], w: FileWork) -> FileWork:
    for stage in stages:
        w = stage([w])[0]
    return w


def _through_all(stages: Sequence[Stage], batch: list[FileWork]) -> list[FileWork]:
    for stage in stages:
        batch = stage(batch)
    return batch
