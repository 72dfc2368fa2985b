"""The ingest pipeline: scan -> hash -> decode -> embed -> tag -> transcribe -> write.

Incremental and resumable. Decode threads (:mod:`enrich.prepare`) hash each file and decode it
(images at reduced size, videos as keyframes) while the main thread runs CLIP on the previous
batch. Each batch is written in one transaction, so an interrupted run keeps every finished
batch and a re-run picks up where it stopped: files whose size and mtime are unchanged and that
are complete (embedded, or failed) are skipped; a known content hash is a rename or an exact
duplicate, whose vectors, tags and transcript are reused without decoding.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from assetlens.enrich.decode import DEFAULT_MAX_PIXELS
from assetlens.enrich.errors import DecodeError
from assetlens.enrich.lock import writer_lock
from assetlens.enrich.prepare import Prepared, make_worker
from assetlens.enrich.records import asset_values, original_id, reuse_known_content, size_mtime, write_failure
from assetlens.enrich.scan import Candidate, ScanFailure, path_uri, scan
from assetlens.enrich.tagging import Tagger
from assetlens.enrich.transcribe import needs_transcript, transcribe_assets, transcribe_file
from assetlens.enrich.video import KeyframeOptions
from assetlens.models.clip import ClipEncoder
from assetlens.models.whisper import Transcriber
from assetlens.search.store import Asset, Store
from assetlens.search.vectors.index import VectorIndex


def default_workers(device: str = "cpu") -> int:
    """Decode threads that fit where the model runs.

    On a CPU the network needs the cores too: up to 4 threads keep it fed (on 2 cores, 2
    threads did 16% more images/s than 1). On a GPU decoding is all the CPU does and bounds the
    run: every core (16 threads on an H200 host gave 3x the images/s of 4).
    """
    cores = os.cpu_count() or 2
    return cores if device == "cuda" else max(1, min(4, cores))


def default_batch_size(device: str = "cpu") -> int:
    """Images per batch: 32 on a CPU; 128 on a GPU, which it keeps busier (+26% images/s, H200)."""
    return 128 if device == "cuda" else 32


@dataclass(frozen=True)
class IngestOptions:
    """How an ingest run behaves (see ``assetlens ingest --help``)."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    include_hidden: bool = False
    prune: bool = False
    force: bool = False
    video: bool = True
    audio: bool = True
    transcribe: bool = True
    keyframes: KeyframeOptions = field(default_factory=KeyframeOptions)
    batch_size: int = 0  # 0: default_batch_size() of the encoder's device
    workers: int = 0  # 0: default_workers() of the encoder's device
    max_pixels: int = DEFAULT_MAX_PIXELS
    progress: bool = False


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
    interrupted: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def counts(self) -> dict[str, int]:
        """The file counts (what a job records)."""
        return {k: v for k, v in self.as_dict().items() if type(v) is int and k != "job_id"}


class Ingester:
    """Runs ingest jobs against one store.

    Args:
        store: The library's store.
        encoder: CLIP encoder (the store's model).
        tagger: Tags images and keyframes from their vectors.
        index: Vector index brought level with the store after each run (optional).
        transcriber: Speech model for audio and video sound (None: no transcripts).
    """

    def __init__(
        self,
        store: Store,
        encoder: ClipEncoder,
        tagger: Tagger,
        index: VectorIndex | None = None,
        transcriber: Transcriber | None = None,
    ) -> None:
        self.store, self.encoder, self.tagger = store, encoder, tagger
        self.index, self.transcriber = index, transcriber
        self._redo: Callable[[Candidate], Prepared] | None = None

    def ingest(self, roots: Sequence[Path], options: IngestOptions | None = None) -> IngestReport:
        """Ingest every media file under ``roots``.

        Holds the library's writer lock (:mod:`enrich.lock`) for the whole run.

        Raises:
            FileNotFoundError: A root does not exist.
            ModelMismatchError: The store holds another model's vectors.
            LibraryBusyError: Another process is writing to the library.
            KeyboardInterrupt: Re-raised after finished batches are committed; the report's
                job is marked ``interrupted``.
        """
        with writer_lock(self.store, "ingest"):
            return self._ingest(roots, self._fit(options or IngestOptions()))

    def _fit(self, options: IngestOptions) -> IngestOptions:
        """Fill in the batch size and decode threads left to the device (0)."""
        device = self.encoder.device
        return replace(
            options,
            batch_size=options.batch_size or default_batch_size(device),
            workers=options.workers or default_workers(device),
        )

    def _ingest(self, roots: Sequence[Path], options: IngestOptions) -> IngestReport:
        with self.store.transaction():
            self.store.ensure_model(self.encoder.model_id)
        items = list(
            scan(
                roots, include=options.include, exclude=options.exclude, include_hidden=options.include_hidden
            )
        )
        args = {k: v for k, v in asdict(options).items() if k != "progress"}
        report = IngestReport(
            self.store.start_job(
                "ingest", {"roots": [str(r) for r in roots], "model": self.encoder.model_id, **args}
            )
        )
        bar = tqdm(total=len(items), unit="file", disable=not options.progress, smoothing=0.1)
        status = "done"
        try:
            todo, untranscribed = self._plan(items, options, report, bar)
            self._run(todo, options, report, bar)
            if untranscribed and self.transcriber is not None:
                done = transcribe_assets(self.store, self.transcriber, untranscribed, report.job_id)
                report.transcribed += done.transcribed
            if options.prune:
                self._prune(roots, report)
        except KeyboardInterrupt:
            status, report.interrupted = "interrupted", True
            raise
        except BaseException:
            status = "failed"
            raise
        finally:
            bar.close()
            try:
                self.store.finish_job(report.job_id, status, report.counts())
                if self.index is not None:
                    self.index.sync()
            except Exception:
                # Bookkeeping after a failure (a full disk fails these too) must not replace
                # the error that stopped the run; the next run closes the job and the index.
                if status == "done":
                    raise
        return report

    def _plan(
        self, items: list[Candidate | ScanFailure], options: IngestOptions, report: IngestReport, bar: tqdm
    ) -> tuple[list[Candidate], list[Asset]]:
        """Split scanned files into work, skips and failures; find transcripts still missing."""
        todo: list[Candidate] = []
        untranscribed: list[Asset] = []
        wanted = {"image", *(["video"] if options.video else []), *(["audio"] if options.audio else [])}
        with self.store.transaction():
            for item in items:
                existing = self.store.asset_by_uri(path_uri(item.path))
                if isinstance(item, Candidate) and item.kind not in wanted:
                    report.excluded += 1
                elif self._unchanged(item, existing, options):
                    report.skipped += 1
                    if options.transcribe and existing is not None and needs_transcript(existing):
                        untranscribed.append(existing)
                elif isinstance(item, ScanFailure):
                    self._write_failure(item.path, "scan", item.reason, report, None)
                else:
                    todo.append(item)
                    continue
                bar.update()
        return todo, untranscribed

    def _unchanged(
        self, item: Candidate | ScanFailure, existing: Asset | None, options: IngestOptions
    ) -> bool:
        """Same size and mtime as stored, and complete (embedded, sound-only, or failed)."""
        if options.force or existing is None:
            return False
        size, mtime = size_mtime(item.path) if isinstance(item, ScanFailure) else (item.size, item.mtime)
        if existing.size != size or existing.mtime != mtime:
            return False
        return existing.status == "failed" or existing.kind == "audio" or self.store.has_vectors(existing.id)

    def _run(self, todo: list[Candidate], options: IngestOptions, report: IngestReport, bar: tqdm) -> None:
        size = self.encoder.image_size
        keyframes = KeyframeOptions(**{**asdict(options.keyframes), "min_side": size})
        work = make_worker(size, options.max_pixels, keyframes, self.store.embedded_hashes())
        self._redo = make_worker(size, options.max_pixels, keyframes, set())
        pending: list[Prepared] = []
        window = max(options.batch_size * 2, options.workers * 2)
        with ThreadPoolExecutor(options.workers, thread_name_prefix="decode") as pool:
            futures: deque[Future[Prepared]] = deque()
            try:
                for candidate in todo:
                    futures.append(pool.submit(work, candidate))
                    if len(futures) >= window:
                        self._collect(futures.popleft().result(), pending, options, report, bar)
                while futures:
                    self._collect(futures.popleft().result(), pending, options, report, bar)
                if pending:
                    self._flush(pending, options, report, bar)
            finally:
                for future in futures:
                    future.cancel()

    def _collect(
        self,
        prepared: Prepared,
        pending: list[Prepared],
        options: IngestOptions,
        report: IngestReport,
        bar: tqdm,
    ) -> None:
        pending.append(prepared)
        if sum(p.frames for p in pending) >= options.batch_size or len(pending) >= 512:
            self._flush(pending, options, report, bar)
            pending.clear()

    def _progress(self, report: IngestReport, bar: tqdm, finished: int) -> None:
        bar.update(finished)
        counts = report.counts()
        # tqdm does not count when disabled (--json, no TTY): derive progress from the report.
        done = sum(counts[k] for k in ("added", "updated", "skipped", "renamed", "failed", "excluded"))
        self.store.job_progress(report.job_id, {**counts, "done": done, "total": int(bar.total or 0)})

    def _flush(
        self, pending: list[Prepared], options: IngestOptions, report: IngestReport, bar: tqdm
    ) -> None:
        """Embed, transcribe, then write one batch and the job's progress in one transaction."""
        vectors = self._encode([p.pixels for p in pending if p.pixels is not None], options.batch_size)
        offsets = np.cumsum([0] + [p.frames for p in pending])
        transcripts = {
            i: self._transcribe(p, report)
            for i, p in enumerate(pending)
            if p.stage is None and not p.known_content and self._wants_transcript(p, options)
        }
        with self.store.transaction():
            for i, p in enumerate(pending):
                if p.stage is not None:
                    self._write_failure(p.candidate.path, p.stage, p.reason or "", report, p.candidate)
                elif p.known_content and self._reuse(p, report):
                    continue
                elif p.known_content:  # its source vanished meanwhile: decode it now
                    self._write_redo(p, options, report)
                else:
                    self._write(p, vectors[offsets[i] : offsets[i + 1]], transcripts.get(i), report)
            self._progress(report, bar, len(pending))

    def _encode(self, pixels: list[np.ndarray], batch_size: int) -> np.ndarray:
        if not pixels:
            return np.zeros((0, self.encoder.dim), np.float32)
        frames = np.concatenate(pixels)
        return np.concatenate(
            [
                self.encoder.encode_prepared(frames[i : i + batch_size])
                for i in range(0, len(frames), batch_size)
            ]
        )

    def _wants_transcript(self, p: Prepared, options: IngestOptions) -> bool:
        return (
            options.transcribe and self.transcriber is not None and p.probe is not None and p.probe.has_audio
        )

    def _transcribe(self, p: Prepared, report: IngestReport) -> list[dict[str, Any]] | str:
        """Segments of a file's sound, or the reason it could not be transcribed."""
        assert self.transcriber is not None
        try:
            segments = transcribe_file(self.transcriber, p.candidate.path)
        except DecodeError as exc:
            return exc.reason
        report.transcribed += 1
        return segments

    def _write(
        self,
        p: Prepared,
        vectors: np.ndarray,
        transcript: list[dict[str, Any]] | str | None,
        report: IngestReport,
    ) -> None:
        uri = str(p.candidate.path)
        assert p.content_hash is not None
        existing = self.store.asset_by_uri(uri)
        originals = [a for a in self.store.assets_by_hash(p.content_hash) if a.uri != uri]
        values = asset_values(p, vectors, original_id(originals[0]) if originals else None)
        asset_id = self.store.upsert_asset(values)
        self.store.replace_vectors(asset_id, self.encoder.model_id, vectors, list(p.times))
        self.store.replace_tags(
            asset_id, "clip", self.tagger.tag_asset(vectors, p.times) if len(vectors) else []
        )
        if isinstance(transcript, list):
            self.store.replace_segments(
                asset_id, self.transcriber.model_id if self.transcriber else None, transcript
            )
        else:
            self.store.replace_segments(asset_id, None, [])
            if transcript is not None:
                self.store.record_failure(report.job_id, uri, "transcribe", transcript)
        report.added += existing is None
        report.updated += existing is not None
        report.duplicates += bool(originals)

    def _write_redo(self, p: Prepared, options: IngestOptions, report: IngestReport) -> None:
        assert self._redo is not None
        redo = self._redo(p.candidate)
        if redo.stage is not None:
            self._write_failure(p.candidate.path, redo.stage, redo.reason or "", report, p.candidate)
            return
        vectors = self._encode([redo.pixels] if redo.pixels is not None else [], options.batch_size)
        transcript = self._transcribe(redo, report) if self._wants_transcript(redo, options) else None
        self._write(redo, vectors, transcript, report)

    def _reuse(self, p: Prepared, report: IngestReport) -> bool:
        """Reuse known content (see :func:`reuse_known_content`); False if its source vanished."""
        done = reuse_known_content(self.store, p)
        report.skipped += done == "touched"
        report.renamed += done == "renamed"
        report.added += done == "duplicate"
        report.duplicates += done == "duplicate"
        return done is not None

    def _write_failure(
        self, path: Path, stage: str, reason: str, report: IngestReport, candidate: Candidate | None
    ) -> None:
        write_failure(self.store, report.job_id, path, stage, reason, candidate, self.encoder.model_id)
        report.failed += 1

    def _prune(self, roots: Sequence[Path], report: IngestReport) -> None:
        prefixes = [os.path.abspath(r) for r in roots]
        with self.store.transaction():
            for asset_id, uri in self.store.uris():
                inside = any(uri == p or uri.startswith(p.rstrip(os.sep) + os.sep) for p in prefixes)
                if inside and not os.path.lexists(uri):
                    self.store.delete_asset(asset_id)
                    report.pruned += 1


def reembed_library(ingester: Ingester, options: IngestOptions | None = None) -> IngestReport:
    """Switch a library to the ingester's model: drop old vectors, re-encode every asset.

    Re-running after an interruption resumes: assets that already have the new model's vectors
    are skipped. Transcripts are kept (they do not depend on the CLIP model).
    """
    store, model = ingester.store, ingester.encoder.model_id
    if store.model_id != model:
        with store.transaction():
            store.reset_model(model)
    files = [Path(uri) for _, uri in store.uris() if os.path.exists(uri)]
    return ingester.ingest(files, options)
