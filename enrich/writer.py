"""The one store writer of an ingest: stage results in, one transaction per batch.

Whatever runs the stages (threads here, Ray workers elsewhere), only this writer, in the process
that holds the library's lock, writes: each batch of :class:`FileWork` with the job's progress,
in one transaction. A crash loses at most the batch in flight, never half an asset.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from assetlens.enrich.records import asset_values, original_id, reuse_known_content, write_failure
from assetlens.enrich.scan import ScanFailure
from assetlens.enrich.work import FileWork
from assetlens.search.store import Store


@dataclass
class IngestReport:
    """What a run did; ``as_dict`` is the ``ingest --json`` document."""

    job_id: int
    added: int = 0
    updated: int = 0
    skipped: int = 0
    renamed: int = 0
    duplicates: int = 0
    failed: int = 0
    pruned: int = 0
    excluded: int = 0
    transcribed: int = 0
    ocr_read: int = 0
    ocr_failed: int = 0
    interrupted: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def counts(self) -> dict[str, int]:
        """The file counts (what a job records)."""
        return {k: v for k, v in self.as_dict().items() if type(v) is int and k != "job_id"}

    @property
    def done(self) -> int:
        """Files finished, whatever became of them."""
        return self.added + self.updated + self.skipped + self.renamed + self.failed + self.excluded


@dataclass(frozen=True)
class IngestProgress:
    """Where a run stands, after each batch.

    Attributes:
        done: Files finished (written, skipped, failed). total: Files found by the scan.
        images: Images and keyframes embedded (or read for text alone) so far.
        elapsed_s: Seconds since the run began.
        job_id: The run's job (its report's ``job_id``), known from the first call on.
    """

    done: int
    total: int
    images: int
    elapsed_s: float
    job_id: int

    @property
    def files_per_s(self) -> float:
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def images_per_s(self) -> float:
        return self.images / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the rate so far (None before the first file)."""
        rate = self.files_per_s
        return (self.total - self.done) / rate if rate > 0 else None


class Writer:
    """Writes an ingest's results into the store.

    Args:
        store: The library (its writer lock held by the caller).
        report: The run's report, counted here.
        model_id: The CLIP model of the vectors.
        total: Files the scan found (for progress).
        progress: Called after each batch.
    """

    def __init__(
        self,
        store: Store,
        report: IngestReport,
        model_id: str,
        total: int,
        progress: Callable[[IngestProgress], None] | None = None,
    ) -> None:
        self.store, self.report, self.model_id, self.total = store, report, model_id, total
        self._progress, self._images, self._started = progress, 0, time.monotonic()

    def write_scan_failures(self, failures: Sequence[ScanFailure]) -> None:
        """Record the paths the scan could not read (one transaction)."""
        with self._batch():
            for f in failures:
                write_failure(self.store, self.report.job_id, f.path, "scan", f.reason, None, self.model_id)
                self.report.failed += 1
            self._record_progress()

    def write(self, batch: Sequence[FileWork]) -> list[FileWork]:
        """Store one batch of stage results and the job's progress, in one transaction.

        Returns:
            Files whose content was known at decode time but whose source asset has gone since:
            they need a full pass (decode included) before they can be written.
        """
        redo: list[FileWork] = []
        with self._batch():
            for w in batch:
                if w.failure is not None:
                    self._fail(w, w.failure.stage, w.failure.reason)
                elif w.known_content:
                    if not self._reuse(w):
                        redo.append(w)
                elif w.stored:
                    self._later_stages_only(w)
                else:
                    self._write(w)
            self._record_progress()
        return redo

    def _batch(self) -> AbstractContextManager[None]:
        """One transaction whose counts join the report only if it commits (``Store.job_batch``)."""
        saved, images = asdict(self.report), self._images

        def undo() -> None:
            vars(self.report).update(saved)
            self._images = images

        return self.store.job_batch(self.report.job_id, self.report.counts, undo)

    def progress(self) -> IngestProgress:
        """Where the run stands now."""
        elapsed = time.monotonic() - self._started
        return IngestProgress(self.report.done, self.total, self._images, elapsed, self.report.job_id)

    def _record_progress(self) -> None:
        now = self.progress()
        self.store.job_progress(
            self.report.job_id, {**self.report.counts(), "done": now.done, "total": now.total}
        )
        if self._progress is not None:
            self._progress(now)

    def _write(self, w: FileWork) -> None:
        store, uri = self.store, str(w.candidate.path)
        assert w.content_hash is not None
        vectors = w.vectors if w.vectors is not None else np.zeros((0, 0), np.float32)
        existing = store.asset_by_uri(uri)
        originals = [a for a in store.assets_by_hash(w.content_hash) if a.uri != uri]
        values = asset_values(w, vectors, original_id(originals[0]) if originals else None)
        asset_id = store.upsert_asset(values)
        store.replace_vectors(asset_id, self.model_id, vectors, list(w.times))
        store.replace_tags(asset_id, "clip", list(w.tags))
        store.replace_tags(asset_id, "learned", list(w.learned))
        if w.hashes is not None:
            store.duplicates.replace_hashes(asset_id, w.hashes, list(w.times))
        else:
            store.duplicates.forget(asset_id)
        # What this run did not redo (--no-transcribe, --ocr off, a re-embed) still holds for the
        # same content; for new content it is gone.
        same = existing is not None and existing.content_hash == w.content_hash
        self._write_transcript(asset_id, w, keep_old=same)
        self._write_text(asset_id, w, keep_old=same)
        self._record_problems(w)
        self._images += len(vectors)
        self.report.added += existing is None
        self.report.updated += existing is not None
        self.report.duplicates += bool(originals)

    def _later_stages_only(self, w: FileWork) -> None:
        """A stored file, unchanged, given its missing transcript, text or hashes: counted as skipped."""
        assert w.asset_id is not None
        self.report.skipped += 1
        self._write_transcript(w.asset_id, w, keep_old=True)
        self._write_text(w.asset_id, w, keep_old=True)
        if w.hashes is not None:
            self.store.duplicates.replace_hashes(w.asset_id, w.hashes, list(w.times))
        self._record_problems(w)
        self._images += len(w.times) if w.ocr_lines is not None or w.hashes is not None else 0

    def _write_transcript(self, asset_id: int, w: FileWork, keep_old: bool) -> None:
        if w.segments is not None:
            self.store.replace_segments(asset_id, w.transcript_model, list(w.segments))
            self.report.transcribed += 1
        elif not keep_old:
            self.store.replace_segments(asset_id, None, [])

    def _write_text(self, asset_id: int, w: FileWork, keep_old: bool) -> None:
        if w.ocr_lines is not None:
            assert w.ocr_model is not None
            self.store.ocr.replace(asset_id, w.ocr_model, w.ocr_lines)
            self.report.ocr_read += 1
        elif not keep_old:
            self.store.ocr.forget(asset_id)

    def _record_problems(self, w: FileWork) -> None:
        for problem in w.problems:
            uri = str(w.candidate.path)
            self.store.record_failure(self.report.job_id, uri, problem.stage, problem.reason)
            self.report.ocr_failed += problem.stage == "ocr"

    def _reuse(self, w: FileWork) -> bool:
        """Reuse known content (see :func:`reuse_known_content`); False if its source vanished."""
        done = reuse_known_content(self.store, w)
        self.report.skipped += done == "touched"
        self.report.renamed += done == "renamed"
        self.report.added += done == "duplicate"
        self.report.duplicates += done == "duplicate"
        return done is not None

    def _fail(self, w: FileWork, stage: str, reason: str) -> None:
        write_failure(
            self.store, self.report.job_id, w.candidate.path, stage, reason, w.candidate, self.model_id
        )
        self.report.failed += 1
