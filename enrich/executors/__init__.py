"""Executors run the enrichment stages over a plan's files and hand back batches for the writer.

``local`` runs them in this process (decode threads, models in the calling thread); ``ray`` runs
the same stage objects on a Ray cluster (tasks for decoding, an actor pool per model). Both
yield lists of :class:`~assetlens.enrich.work.FileWork`, in any order, each file exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from assetlens.enrich.stages import Stage
from assetlens.enrich.work import FileWork


class Executor(Protocol):
    """Runs stages over files."""

    def run(self, stages: Sequence[Stage], work: Sequence[FileWork]) -> Iterator[list[FileWork]]:
        """Every file through every stage, yielded in batches as they finish."""
        ...

    def close(self) -> None:
        """Let go of what the executor holds (a cluster connection it opened)."""
        ...
