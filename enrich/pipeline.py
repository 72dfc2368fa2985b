"""The ingest pipeline: plan -> stages -> executor -> writer.

:func:`~assetlens.enrich.plan.plan_ingest` scans the roots and diffs them against the store; the
stages (:mod:`assetlens.enrich.stages`: decode, embed, tag, ocr, transcribe) turn each file into
records; an executor (:mod:`assetlens.enrich.executors`: local threads, or a Ray cluster) runs
them; the :class:`~assetlens.enrich.writer.Writer` stores each batch in one transaction.

Incremental and resumable: an interrupted run keeps every finished batch and a re-run picks up
where it stopped. Files whose size and mtime are unchanged and that are complete (embedded, or
failed) are skipped; a known content hash is a rename or an exact duplicate, whose vectors, tags
and transcript are reused without decoding.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

from assetlens.enrich.decode import DEFAULT_MAX_PIXELS
from assetlens.enrich.executors import Executor
from assetlens.enrich.executors.local import LocalExecutor
from assetlens.enrich.lock import writer_lock
from assetlens.enrich.plan import plan_ingest
from assetlens.enrich.scan import scan
from assetlens.enrich.stages import Decode, Embed, Hash, Learned, Stage, Tag
from assetlens.enrich.tagging import Tagger, TagScorer
from assetlens.enrich.text_stages import Ocr, Transcribe
from assetlens.enrich.video import KeyframeOptions
from assetlens.enrich.work import FileWork
from assetlens.enrich.writer import IngestProgress, IngestReport, Writer
from assetlens.models.clip import ClipEncoder
from assetlens.models.ocr import TextReader
from assetlens.models.settings import WhisperSettings
from assetlens.search.duplicates import NearDuplicates
from assetlens.search.learned import LearnedTag
from assetlens.search.store import Store
from assetlens.search.vectors.index import VectorIndex

__all__ = ["IngestOptions", "IngestProgress", "IngestReport", "Ingester", "reembed_library"]

S = TypeVar("S")  # a stored-asset pass's own report


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
    engine: Literal["local", "ray", "auto"] = "local"
    ray_address: str | None = None
    ray_actors: int = 0  # 0: one per node, or per GPU
    progress: Callable[[IngestProgress], None] | None = None


class Ingester:
    """Runs ingest jobs against one store.

    Args:
        store: The library's store.
        encoder: CLIP encoder (the store's model).
        tagger: Tags images and keyframes from their vectors.
        index: Vector index brought level with the store after each run (optional).
        transcription: Whisper settings for audio and video sound (None: no transcripts).
        reader: Reads text in images and keyframes, in the mode of its settings (None: no
            OCR; nothing of the OCR engine is then imported).
        duplicates: The library's near-duplicate groups, which new assets join after each run
            (default: at the default thresholds).
    """

    def __init__(
        self,
        store: Store,
        encoder: ClipEncoder,
        tagger: Tagger,
        index: VectorIndex | None = None,
        transcription: WhisperSettings | None = None,
        reader: TextReader | None = None,
        duplicates: NearDuplicates | None = None,
    ) -> None:
        self.store, self.encoder, self.tagger = store, encoder, tagger
        self.index, self.transcription, self.reader = index, transcription, reader
        self.duplicates = duplicates or NearDuplicates(store)

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
        found = scan(
            roots, include=options.include, exclude=options.exclude, include_hidden=options.include_hidden
        )
        kinds = frozenset(
            {"image", *(["video"] if options.video else []), *(["audio"] if options.audio else [])}
        )
        transcribe = options.transcribe and self.transcription is not None
        ocr = self.reader is not None
        plan = plan_ingest(
            self.store, list(found), kinds=kinds, transcribe=transcribe, force=options.force, ocr=ocr
        )
        args = {k: v for k, v in asdict(options).items() if k != "progress"}
        args["ocr"] = self.reader.settings.ocr if self.reader is not None else "off"
        report = IngestReport(
            self.store.start_job(
                "ingest", {"roots": [str(r) for r in roots], "model": self.encoder.model_id, **args}
            )
        )
        report.skipped, report.excluded = plan.skipped, plan.excluded
        writer = Writer(self.store, report, self.encoder.model_id, plan.total, options.progress)
        status = "done"
        try:
            writer.write_scan_failures(plan.failures)
            executor = make_executor(options)
            try:
                # No file with sound, no speech model; no picture, no OCR model (on Ray, no
                # actor holding cores for nothing).
                transcribe = transcribe and any(w.candidate.kind in ("audio", "video") for w in plan.work)
                ocr = ocr and any(w.candidate.kind in ("image", "video") for w in plan.work)
                stages = self._stages(options, transcribe, ocr, known=True)
                redo = run_stages(executor, stages, plan.work, writer)
                if redo:  # known content whose source vanished meanwhile: decode it after all
                    stages = self._stages(options, transcribe, ocr, known=False)
                    run_stages(executor, stages, redo, writer)
            finally:
                executor.close()
            if options.prune:
                self._prune(roots, report)
        except KeyboardInterrupt:
            status, report.interrupted = "interrupted", True
            raise
        except BaseException:
            status = "failed"
            raise
        finally:
            try:
                self.store.finish_job(report.job_id, status, report.counts())
                if self.index is not None:
                    self.index.sync()
            except Exception:
                # Bookkeeping after a failure (a full disk fails these too) must not replace
                # the error that stopped the run; the next run closes the job and the index.
                if status == "done":
                    raise
        self.duplicates.update(self.index)  # the new assets join (or start) near-duplicate groups
        return report

    def _stages(self, options: IngestOptions, transcribe: bool, ocr: bool, known: bool) -> list[Stage]:
        size, reader = self.encoder.image_size, self.reader if ocr else None
        # --force re-decodes even content the library holds (else it would only be "touched").
        hashes = frozenset(self.store.embedded_hashes()) if known and not options.force else frozenset()
        side = 0 if reader is None else reader.settings.ocr_frame_side
        decode = Decode(size, options.max_pixels, options.keyframes, hashes, side)
        embed = Embed(self.encoder.spec, self.encoder.settings, options.batch_size, self.encoder)
        reading = None if reader is None else Ocr(reader.settings, options.max_pixels, reader)
        learned = [t for t in self.store.learned.all() if t.model == self.encoder.model_id]
        whisper = self.transcription if transcribe else None
        return ingest_stages(decode, embed, self.tagger.scorer(), whisper, reading, learned)

    def _prune(self, roots: Sequence[Path], report: IngestReport) -> None:
        prefixes = [os.path.abspath(r) for r in roots]
        with self.store.transaction():
            for asset_id, uri in self.store.uris():
                inside = any(uri == p or uri.startswith(p.rstrip(os.sep) + os.sep) for p in prefixes)
                if inside and not os.path.lexists(uri):
                    self.store.delete_asset(asset_id)
                    report.pruned += 1


def make_executor(options: IngestOptions) -> Executor:
    """The executor ``options.engine`` names."""
    if options.engine == "local":
        return LocalExecutor(options.workers, options.batch_size)
    from assetlens.enrich.executors.ray_cluster import RayExecutor  # Ray is an optional extra

    return RayExecutor.connect(
        options.ray_address, options.batch_size, options.workers, required=options.engine == "ray",
        actors=options.ray_actors,
    )  # fmt: skip


def ingest_stages(
    decode: Decode,
    embed: Embed,
    scorer: TagScorer,
    transcribe: WhisperSettings | None,
    ocr: Ocr | None = None,
    learned: Sequence[LearnedTag] = (),
) -> list[Stage]:
    """The stages of an ingest, in order.

    ``transcribe``/``ocr`` None: no speech/text recognition; ``learned``: the library's learned
    classifiers of this model. OCR comes before transcription so that its pictures are dropped
    before the longest stage.
    """
    stages: list[Stage] = [decode, Hash(), embed, Tag(scorer)]
    if learned:
        stages.append(Learned(learned))
    if ocr is not None:
        stages.append(ocr)
    if transcribe is not None:
        stages.append(Transcribe(transcribe))
    return stages


def run_stored_pass(
    store: Store,
    kind: str,
    args: dict[str, Any],
    work: list[FileWork],
    stages: list[Stage],
    options: IngestOptions,
    summarise: Callable[[IngestReport, str], tuple[S, dict[str, int]]],
) -> S:
    """Run ``stages`` over work on stored assets (``assetlens ocr``, the hashes of assets stored
    before hashes existed) in a job of kind ``kind``: on the executor of ``options`` (0 workers or
    batch size: as for a CPU ingest), through the writer.

    ``summarise(written, status)`` gives the caller's report and the job's final counts, however
    the pass ends.

    Raises:
        KeyboardInterrupt: Finished batches are kept; the job is marked ``interrupted``.
    """
    options = replace(
        options,
        workers=options.workers or default_workers(),
        batch_size=options.batch_size or default_batch_size(),
    )
    written = IngestReport(store.start_job(kind, args))
    writer = Writer(store, written, store.model_id or "", len(work), options.progress)
    status = "done"
    try:
        executor = make_executor(options)
        try:
            run_stages(executor, stages, work, writer)
        finally:
            executor.close()
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    except BaseException:
        status = "failed"
        raise
    finally:
        summary, counts = summarise(written, status)
        try:
            store.finish_job(written.job_id, status, counts)
        except Exception:
            if status == "done":  # else the error that stopped the run matters more
                raise
    return summary


def run_stages(
    executor: Executor, stages: list[Stage], work: list[FileWork], writer: Writer
) -> list[FileWork]:
    """Every file through the stages and into the writer; returns known content to decode after all."""
    redo: list[FileWork] = []
    for batch in executor.run(stages, work):
        redo += writer.write(batch)
    return [replace(w, known_content=False, content_hash=None) for w in redo]


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
