"""The ingest pipeline: scan -> hash -> decode -> embed -> tag -> write, incremental and resumable.

Decode workers (threads: Pillow releases the GIL while decoding and resizing) hash each file,
decode it at reduced size and prepare the model input, while the main thread runs CLIP on the
previous batch. Each batch is written in one transaction, so an interrupted run keeps every
finished batch and a re-run picks up where it stopped: files whose size and mtime are unchanged
and that already have vectors (or already failed) are skipped; a known content hash is a rename
or an exact duplicate, whose vectors are reused without decoding.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from enrich.decode import DEFAULT_MAX_PIXELS, ImageMetadata, decode_image
from enrich.errors import DecodeError
from enrich.scan import Candidate, ScanFailure, scan
from enrich.tagging import Tagger
from models.clip import ClipEncoder, prepare_image
from models.registry import file_digest
from search.index import VectorIndex
from search.store import Asset, Store, now_iso

# Kinds this version embeds; others are counted as unsupported and left for a later version.
SUPPORTED_KINDS = frozenset({"image"})


def default_workers() -> int:
    """Decode threads: enough to keep one inference thread fed without starving it of cores."""
    return max(1, min(4, (os.cpu_count() or 2)))


@dataclass(frozen=True)
class IngestOptions:
    """How an ingest run behaves (see ``assetlens ingest --help``)."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    include_hidden: bool = False
    prune: bool = False
    force: bool = False
    batch_size: int = 32
    workers: int = field(default_factory=default_workers)
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
    unsupported: int = 0
    interrupted: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Prepared:
    """A file after the worker stage: hashed, and decoded unless its content is already known."""

    candidate: Candidate
    content_hash: str | None = None
    pixels: np.ndarray | None = None
    metadata: ImageMetadata | None = None
    stage: str | None = None  # set when the file failed
    reason: str | None = None
    known_content: bool = False


class Ingester:
    """Runs ingest jobs against one store.

    Args:
        store: The library's store.
        encoder: CLIP encoder (the store's model).
        tagger: Tags images from their vectors.
        index: Vector index to bring level with the store after the run (optional).
    """

    def __init__(
        self, store: Store, encoder: ClipEncoder, tagger: Tagger, index: VectorIndex | None = None
    ) -> None:
        self.store, self.encoder, self.tagger, self.index = store, encoder, tagger, index
        self._decode_again = _worker(encoder.image_size, DEFAULT_MAX_PIXELS, set())

    def ingest(self, roots: Sequence[Path], options: IngestOptions | None = None) -> IngestReport:
        """Ingest every media file under ``roots``.

        Raises:
            FileNotFoundError: A root does not exist.
            ModelMismatchError: The store holds another model's vectors.
            KeyboardInterrupt: Re-raised after finished batches are committed; the report's
                job is marked ``interrupted``.
        """
        options = options or IngestOptions()
        with self.store.transaction():
            self.store.ensure_model(self.encoder.model_id)
        items = list(
            scan(
                roots, include=options.include, exclude=options.exclude, include_hidden=options.include_hidden
            )
        )
        report = IngestReport(
            self.store.start_job(
                "ingest",
                {
                    "roots": [str(r) for r in roots],
                    "model": self.encoder.model_id,
                    **{k: v for k, v in asdict(options).items() if k != "progress"},
                },
            )
        )
        bar = tqdm(total=len(items), unit="file", disable=not options.progress, smoothing=0.1)
        status = "done"
        try:
            todo = self._plan(items, options, report, bar)
            self._run(todo, options, report, bar)
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
            self.store.finish_job(
                report.job_id, status, {k: v for k, v in report.as_dict().items() if isinstance(v, int)}
            )
            if self.index is not None:
                self.index.sync()
        return report

    def _plan(
        self, items: list[Candidate | ScanFailure], options: IngestOptions, report: IngestReport, bar: tqdm
    ) -> list[Candidate]:
        todo: list[Candidate] = []
        with self.store.transaction():
            for item in items:
                if isinstance(item, Candidate) and item.kind not in SUPPORTED_KINDS:
                    report.unsupported += 1
                elif self._unchanged(item, options):
                    report.skipped += 1
                elif isinstance(item, ScanFailure):
                    self._write_failure(item.path, "scan", item.reason, report, None)
                else:
                    todo.append(item)
                    continue
                bar.update()
        return todo

    def _unchanged(self, item: Candidate | ScanFailure, options: IngestOptions) -> bool:
        """Same size and mtime as stored, and already embedded or already failed."""
        existing = self.store.asset_by_uri(str(item.path))
        if options.force or existing is None:
            return False
        size, mtime = _size_mtime(item.path) if isinstance(item, ScanFailure) else (item.size, item.mtime)
        same_file = existing.size == size and existing.mtime == mtime
        return same_file and (existing.status == "failed" or self.store.has_vectors(existing.id))

    def _run(self, todo: list[Candidate], options: IngestOptions, report: IngestReport, bar: tqdm) -> None:
        work = _worker(self.encoder.image_size, options.max_pixels, self.store.embedded_hashes())
        self._decode_again = _worker(self.encoder.image_size, options.max_pixels, set())
        pending: list[_Prepared] = []
        window = max(options.batch_size * 2, options.workers * 2)
        with ThreadPoolExecutor(options.workers, thread_name_prefix="decode") as pool:
            futures: deque[Future[_Prepared]] = deque()
            queue = iter(todo)
            try:
                for candidate in queue:
                    futures.append(pool.submit(work, candidate))
                    if len(futures) >= window:
                        self._collect(futures.popleft().result(), pending, options, report, bar)
                while futures:
                    self._collect(futures.popleft().result(), pending, options, report, bar)
                self._flush(pending, report)
                bar.update(len(pending))
            finally:
                for future in futures:
                    future.cancel()

    def _collect(
        self,
        prepared: _Prepared,
        pending: list[_Prepared],
        options: IngestOptions,
        report: IngestReport,
        bar: tqdm,
    ) -> None:
        pending.append(prepared)
        if sum(p.pixels is not None for p in pending) >= options.batch_size or len(pending) >= 512:
            self._flush(pending, report)
            bar.update(len(pending))
            pending.clear()

    def _flush(self, pending: list[_Prepared], report: IngestReport) -> None:
        decoded = [p for p in pending if p.pixels is not None]
        pixels = [p.pixels for p in decoded if p.pixels is not None]
        vectors = self.encoder.encode_prepared(np.stack(pixels)) if pixels else None
        by_uri = {str(p.candidate.path): i for i, p in enumerate(decoded)}
        with self.store.transaction():
            for p in pending:
                uri = str(p.candidate.path)
                if p.stage is not None:
                    self._write_failure(p.candidate.path, p.stage, p.reason or "", report, p.candidate)
                elif p.known_content and self._reuse(p, report):
                    continue
                elif vectors is not None and uri in by_uri:
                    self._write_decoded(p, vectors[by_uri[uri]], report)
                else:  # known content whose source vanished meanwhile: decode it now
                    self._write_decoded_now(p, report)

    def _write_decoded(self, p: _Prepared, vector: np.ndarray, report: IngestReport) -> None:
        assert p.metadata is not None and p.content_hash is not None
        c, meta = p.candidate, p.metadata
        existing = self.store.asset_by_uri(str(c.path))
        originals = [a for a in self.store.assets_by_hash(p.content_hash) if a.uri != str(c.path)]
        embedded = {
            k: v for k, v in meta.as_dict().items() if k not in ("width", "height", "created", "exif", "xmp")
        }
        asset_id = self.store.upsert_asset(
            {
                "uri": str(c.path),
                "content_hash": p.content_hash,
                "kind": c.kind,
                "mime": c.mime,
                "size": c.size,
                "mtime": c.mtime,
                "width": meta.width,
                "height": meta.height,
                "created": meta.created or _file_time(c.mtime),
                "status": "ok",
                "error": None,
                "duplicate_of": _root(originals[0]) if originals else None,
                "embedded": embedded,
                "exif": meta.exif,
                "xmp": meta.xmp,
                "ingested_at": now_iso(),
            }
        )
        self.store.replace_vectors(asset_id, self.encoder.model_id, vector[None, :], [None])
        self.store.replace_tags(asset_id, "clip", self.tagger.tag_asset(vector[None, :], [None]))
        if existing is None:
            report.added += 1
        else:
            report.updated += 1
        if originals:
            report.duplicates += 1

    def _write_decoded_now(self, p: _Prepared, report: IngestReport) -> None:
        redo = self._decode_again(p.candidate)
        if redo.stage is not None or redo.pixels is None:
            self._write_failure(
                p.candidate.path, redo.stage or "decode", redo.reason or "", report, p.candidate
            )
            return
        self._write_decoded(redo, self.encoder.encode_prepared(redo.pixels[None])[0], report)

    def _reuse(self, p: _Prepared, report: IngestReport) -> bool:
        """Handle known content without decoding: touched file, rename or duplicate."""
        assert p.content_hash is not None
        c, uri = p.candidate, str(p.candidate.path)
        sources = self.store.assets_by_hash(p.content_hash)
        if not sources:
            return False
        same = next((a for a in sources if a.uri == uri), None)
        if same is not None:  # touched (mtime changed) but same content
            self.store.update_asset(same.id, {"size": c.size, "mtime": c.mtime})
            report.skipped += 1
            return True
        moved = next((a for a in sources if not os.path.exists(a.uri)), None)
        if moved is not None:
            stale = self.store.asset_by_uri(uri)
            if stale is not None:
                self.store.delete_asset(stale.id)
            self.store.update_asset(moved.id, {"uri": uri, "size": c.size, "mtime": c.mtime})
            report.renamed += 1
            return True
        source = sources[0]
        asset_id = self.store.upsert_asset(
            {
                "uri": uri,
                "content_hash": p.content_hash,
                "kind": source.kind,
                "mime": source.mime,
                "size": c.size,
                "mtime": c.mtime,
                "width": source.width,
                "height": source.height,
                "created": source.created,
                "status": "ok",
                "error": None,
                "duplicate_of": _root(source),
                "embedded": source.embedded,
                "exif": source.exif,
                "xmp": source.xmp,
                "ingested_at": now_iso(),
            }
        )
        self.store.copy_vectors_and_tags(source.id, asset_id)
        report.added += 1
        report.duplicates += 1
        return True

    def _write_failure(
        self, path: Path, stage: str, reason: str, report: IngestReport, candidate: Candidate | None
    ) -> None:
        uri = str(path)
        size, mtime = _size_mtime(path)
        asset_id = self.store.upsert_asset(
            {
                "uri": uri,
                "content_hash": None,
                "kind": candidate.kind if candidate else None,
                "mime": candidate.mime if candidate else None,
                "size": size,
                "mtime": mtime,
                "status": "failed",
                "error": f"{stage}: {reason}",
                "ingested_at": now_iso(),
            }
        )
        # The file's old vectors and tags describe content that is no longer there.
        self.store.replace_vectors(
            asset_id, self.encoder.model_id, np.zeros((0, self.encoder.dim), np.float32), []
        )
        self.store.replace_tags(asset_id, "clip", [])
        self.store.record_failure(report.job_id, uri, stage, reason)
        report.failed += 1

    def _prune(self, roots: Sequence[Path], report: IngestReport) -> None:
        prefixes = [str(Path(os.path.abspath(r))) for r in roots]
        with self.store.transaction():
            for asset_id, uri in self.store.uris():
                inside = any(uri == p or uri.startswith(p.rstrip(os.sep) + os.sep) for p in prefixes)
                if inside and not os.path.lexists(uri):
                    self.store.delete_asset(asset_id)
                    report.pruned += 1


def _worker(size: int, max_pixels: int, known: set[str]) -> Callable[[Candidate], _Prepared]:
    def work(c: Candidate) -> _Prepared:
        try:
            digest = file_digest(c.path, digest_size=16)
        except OSError as exc:
            return _Prepared(c, stage="read", reason=f"cannot read file ({exc.strerror or exc})")
        if digest in known:
            return _Prepared(c, content_hash=digest, known_content=True)
        try:
            decoded = decode_image(c.path, min_side=size, max_pixels=max_pixels)
        except DecodeError as exc:
            return _Prepared(c, content_hash=digest, stage="decode", reason=exc.reason)
        return _Prepared(c, digest, prepare_image(decoded.image, size), decoded.metadata)

    return work


def _size_mtime(path: Path) -> tuple[int, float]:
    """Size and mtime of a file that failed (of the link itself when it is broken)."""
    try:
        st = path.lstat()
    except OSError:
        return 0, 0.0
    return st.st_size, st.st_mtime


def _root(asset: Asset) -> int:
    return asset.duplicate_of or asset.id


def _file_time(mtime: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(mtime))


def reembed_library(ingester: Ingester, options: IngestOptions | None = None) -> IngestReport:
    """Switch a library to the ingester's model: drop old vectors, re-encode every asset.

    Re-running after an interruption resumes: assets that already have the new model's vectors
    are skipped.
    """
    store, model = ingester.store, ingester.encoder.model_id
    if store.model_id != model:
        with store.transaction():
            store.reset_model(model)
    files = [Path(uri) for _, uri in store.uris() if os.path.exists(uri)]
    return ingester.ingest(files, options)
