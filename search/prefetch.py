"""Read ahead in a thread: the next item is produced (SQLite rows read, a Parquet batch decoded)
while the caller works on the current one. Both sides mostly run in C code that releases the
GIL, so on two cores the reading nearly disappears from the wall time."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


def prefetch(items: Iterator[T], name: str, depth: int = 1) -> Iterator[T]:
    """The items of ``items``, produced up to ``depth`` ahead in a thread named ``name``.

    An error of the producer is raised here, at the item it failed on. A caller that stops
    early (an error of its own, a ``break``) stops the producer too, which then drops what it
    read ahead.
    """
    ready: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: object) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer(item):
                    return
            offer(_DONE)
        except BaseException as exc:  # handed to the consumer, which raises it
            offer(exc)

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()
