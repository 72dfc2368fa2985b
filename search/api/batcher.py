"""Micro-batching of query texts: concurrent requests share one ``encode_texts`` call.

A text encoder pass over 8 texts costs little more than over 1, so under load the texts of
requests that arrive within a few milliseconds of each other are encoded together. The encoder
keeps the results in its LRU text cache, where the query engine then finds them: the batcher
only has to warm that cache, and the engine stays unaware of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import numpy as np
from starlette.concurrency import run_in_threadpool


class TextBatcher:
    """Collects texts for ``window_s`` (or until ``max_batch`` texts) and encodes them in one call.

    Args:
        encode: The encoder's ``encode_texts`` (runs in a worker thread).
        window_s: How long the first text of a batch waits for company.
        max_batch: A batch this large is encoded at once.
    """

    def __init__(
        self, encode: Callable[[list[str]], np.ndarray], window_s: float = 0.005, max_batch: int = 64
    ) -> None:
        self._encode = encode
        self.window_s, self.max_batch = window_s, max_batch
        self._pending: list[tuple[list[str], asyncio.Future[np.ndarray]]] = []
        self._count = 0
        self._timer: asyncio.TimerHandle | None = None
        self._running: set[asyncio.Task[None]] = set()
        self.batches = 0  # encoder calls made
        self.texts = 0  # texts encoded through them

    async def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Encode ``texts`` (``(N, dim)`` unit vectors), batched with other callers' texts."""
        if not texts:
            return np.zeros((0, 0), np.float32)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._pending.append((list(texts), future))
        self._count += len(texts)
        if self._count >= self.max_batch or self.window_s <= 0:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.window_s, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending, self._count = self._pending, [], 0
        if batch:
            task = asyncio.ensure_future(self._run(batch))
            self._running.add(task)  # a reference, so the task is not collected mid-flight
            task.add_done_callback(self._running.discard)

    async def _run(self, batch: list[tuple[list[str], asyncio.Future[np.ndarray]]]) -> None:
        unique = list(dict.fromkeys(text for texts, _ in batch for text in texts))
        try:
            vectors = await run_in_threadpool(self._encode, unique)
        except Exception as exc:  # every waiting request gets the error (a model that fails to load)
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        self.batches += 1
        self.texts += len(unique)
        found = dict(zip(unique, vectors, strict=True))
        for texts, future in batch:
            if not future.done():  # the request may have been cancelled meanwhile
                future.set_result(np.stack([found[t] for t in texts]))
