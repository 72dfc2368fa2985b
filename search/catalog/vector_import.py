"""``assetlens import``: embeddings computed elsewhere (a cluster job, another tool) into a library.

Reads Parquet files and clip-retrieval output folders (:mod:`search.catalog.vector_sources`) a
batch at a time, so memory stays bounded whatever the file size, and writes each batch in one
transaction. Every row is one vector of an asset: a still (``t`` null) or a video frame at ``t``
seconds; rows of one uri make one asset. A row adds the vector at ``(uri, t)`` or replaces a
different one there, so importing the same file again changes nothing (idempotent). Vectors are
normalised (the index ranks by inner product) and stored as float16.

The model: ``model`` if given, else the file's own (``assetlens.model`` Parquet metadata), else
the library's. An empty library adopts it; a library holding another model's vectors refuses the
import, naming both. Rows that cannot be imported (no uri, no embedding, wrong dimension, NaN or
infinite values, a zero vector, a bad ``t``, ``kind``, ``meta`` or ``tags``) are recorded in
``failures`` with their file and row number, and the other rows go in.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from assetlens.search.catalog.import_rows import CheckedBatch, checked_batches
from assetlens.search.catalog.vector_sources import (
    Chunk,
    VectorImportError,
    count_rows,
    model_of,
    sources,
)
from assetlens.search.errors import ModelMismatchError
from assetlens.search.prefetch import prefetch
from assetlens.search.store import Store
from assetlens.search.store.imports import BATCH_ROWS

__all__ = ["VectorImportError", "VectorImportReport", "import_vectors"]

MAX_REPORTED = 1000


@dataclass(frozen=True)
class VectorImportReport:
    """What an import did (``as_dict()`` is the CLI's ``--json`` document).

    Attributes:
        added: Rows whose vector was new.
        updated: Rows that replaced a different vector, or changed their asset's meta, tags or date.
        unchanged: Rows already in the library as given.
        failed: Rows not imported (each in ``failures``, the first :data:`MAX_REPORTED` here).
        rows: Rows read. assets_added: New assets.
        model: The model id of the vectors. dim: Their dimension.
        files: Files read. seconds: Wall time. job_id: The ``import`` job (failures hang off it).
        failures: ``{"file", "row", "uri", "reason"}`` of failed rows (``row`` is 0-based).
    """

    added: int
    updated: int
    unchanged: int
    failed: int
    rows: int
    assets_added: int
    model: str
    dim: int
    files: list[str]
    seconds: float
    job_id: int
    failures: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["rows_per_s"] = round(self.rows / self.seconds, 1) if self.seconds > 0 else None
        return doc


class _Tally:
    def __init__(self) -> None:
        self.counts = {"added": 0, "updated": 0, "unchanged": 0, "failed": 0, "rows": 0, "assets_added": 0}
        self.failures: list[dict[str, Any]] = []

    def batch(self, store: Store, job: int) -> AbstractContextManager[None]:
        """A batch's transaction, whose counts join only if it commits (``Store.job_batch``)."""
        counts, failures = dict(self.counts), len(self.failures)

        def undo() -> None:
            self.counts = counts
            del self.failures[failures:]

        return store.job_batch(job, lambda: self.counts, undo)


def import_vectors(
    store: Store,
    paths: list[Path],
    model: str | None = None,
    *,
    batch_rows: int = BATCH_ROWS,
    progress: Callable[[int, int], None] | None = None,
) -> VectorImportReport:
    """Import embedding files and folders into the library.

    Args:
        store: The library's store.
        paths: Parquet files, folders of them, or clip-retrieval output folders.
        model: The embeddings' model id (default: the files' own, else the library's).
        batch_rows: Rows per read and per transaction (memory: up to three batches, about
            ``3 * batch_rows * dim * 12`` bytes, as the next is read while one is written).
        progress: Called with ``(rows done, rows in all files)`` after each batch.

    Raises:
        VectorImportError: A path is missing or unreadable, a column is missing, or no model is known.
        ModelMismatchError: The library holds vectors of another model.
    """
    started = time.perf_counter()
    found = sources([Path(p) for p in paths])
    model = _model(store, found, model)
    total = sum(count_rows(layout, path) for layout, path in found)
    dim = store.vector_dim()
    job = store.start_job("import", {"files": [str(p) for _, p in found], "model": model})
    tally = _Tally()
    cache = store.db.execute("PRAGMA cache_size").fetchone()[0]
    store.db.execute("PRAGMA cache_size = -262144")  # 256 MB: B-tree inserts of big batches stay in memory
    try:
        # The next batch is read, checked and normalised in a thread while this one is written.
        for batch in prefetch(checked_batches(found, batch_rows, dim), "import-reader"):
            dim = batch.dim
            with tally.batch(store, job):
                store.ensure_model(model)
                _write(store, batch, model, job, tally)
                store.job_progress(job, tally.counts)
            if progress is not None:
                progress(tally.counts["rows"], total)
    except BaseException as exc:  # Ctrl-C: the batches written are kept, as an ingest's are
        store.finish_job(job, "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed", tally.counts)
        raise
    finally:
        store.db.execute(f"PRAGMA cache_size = {int(cache)}")
    store.finish_job(job, "done", tally.counts)
    c = tally.counts
    return VectorImportReport(
        c["added"], c["updated"], c["unchanged"], c["failed"], c["rows"], c["assets_added"], model, dim,
        [str(p) for _, p in found], round(time.perf_counter() - started, 3), job, tally.failures,
    )  # fmt: skip


def _model(store: Store, found: list[tuple[str, Path]], given: str | None) -> str:
    stated = {m for m in (model_of(layout, path) for layout, path in found) if m is not None}
    if given is not None and stated - {given}:
        raise ModelMismatchError(
            f"the files say their embeddings come from {', '.join(sorted(stated))}, not {given} (--model)"
        )
    if given is None and len(stated) > 1:
        raise VectorImportError(f"the files hold embeddings of several models: {', '.join(sorted(stated))}")
    model = given or next(iter(stated), None) or store.model_id
    if model is None:
        raise VectorImportError(
            "which model made these embeddings? Give it with --model (e.g. ViT-B-32@openai)"
        )
    current = store.model_id
    if current is not None and current != model and store.count_vectors() > 0:
        raise ModelMismatchError(
            f"the embeddings come from model {model}, but this library holds vectors of model {current}: "
            f"vectors of two models cannot be mixed. Import into a new library (ASSETLENS_DATA_DIR)"
        )
    return model


def _write(store: Store, batch: CheckedBatch, model: str, job: int, tally: _Tally) -> None:
    chunk, reasons, rows = batch.chunk, batch.reasons, batch.rows
    tally.counts["rows"] += len(chunk.uris)
    for i, reason in enumerate(reasons):
        if reason is not None:
            _fail(store, job, tally, chunk, i, reason)
    tally.counts["unchanged"] += sum(1 for r in reasons if r is None) - len(rows)  # repeated (uri, t)
    if not rows:
        return
    uris = list(batch.new_values)
    ids = store.asset_ids_for_uris(uris)
    new = [uri for uri in uris if uri not in ids]
    assets = [batch.new_values[uri] for uri in new]
    ids.update(zip(new, store.add_imported_assets(assets), strict=True))
    tally.counts["assets_added"] += len(new)
    fresh = set(new)
    known = [ids[uri] for uri in uris if uri not in fresh]
    changed = _update_assets(store, batch, rows, ids, set(known))
    existing = store.vectors_at(known) if known else {}
    adds, drops = [], []
    for (uri, t), blob in zip(rows, batch.blobs, strict=True):
        old = existing.get((ids[uri], t))
        if old is not None and old[1] == blob:
            tally.counts["updated" if ids[uri] in changed else "unchanged"] += 1
            continue
        if old is not None:
            drops.append(old[0])
        adds.append((ids[uri], t, model, blob))
        tally.counts["updated" if old is not None or ids[uri] in changed else "added"] += 1
    store.delete_vector_rows(drops)
    store.add_vector_rows(adds)


def _update_assets(
    store: Store,
    batch: CheckedBatch,
    rows: dict[tuple[str, float | None], int],
    ids: dict[str, int],
    known: set[int],
) -> set[int]:
    """Set the meta, date and tags the rows carry; the ids of existing assets that changed."""
    columns = batch.chunk.columns
    metas, created, tags = columns.get("meta"), columns.get("created"), columns.get("tags")
    before = store.imported_state(sorted(known)) if known and (metas or created) else {}
    old_tags = store.tags_by_source(sorted(known)) if known and tags else {}
    updates: list[tuple[str | None, str | None, int]] = []
    tag_rows: list[tuple[int, str, float, str, str | None, float | None]] = []
    replaced: list[tuple[int, str]] = []
    changed: set[int] = set()
    for (uri, _), i in rows.items():
        aid = ids[uri]
        meta = batch.metas[i]
        when = None if not created or created[i] is None else str(created[i])
        if aid in known and (meta is not None or when is not None):
            updates.append((meta, when, aid))
            old_meta, old_when = before[aid]
            merged = {**json.loads(old_meta), **json.loads(meta)} if meta else json.loads(old_meta)
            if merged != json.loads(old_meta) or (when is not None and when != old_when):
                changed.add(aid)
        given = batch.tags[i]
        if given is not None:
            for source in {s for _, _, s, _, _ in given}:
                mine = sorted((g, sc, m, tt) for g, sc, s, m, tt in given if s == source)
                if aid in known and old_tags.get((aid, source)) != mine:
                    changed.add(aid)
                replaced.append((aid, source))
            tag_rows.extend((aid, g, sc, s, m, tt) for g, sc, s, m, tt in given)
    store.update_imported_assets(updates)
    store.replace_tag_rows(replaced, tag_rows)
    return changed


def _fail(store: Store, job: int, tally: _Tally, chunk: Chunk, i: int, reason: str) -> None:
    tally.counts["failed"] += 1
    uri = chunk.uris[i] if isinstance(chunk.uris[i], str) and chunk.uris[i].strip() else None
    row = chunk.first_row + i
    store.record_failure(job, uri or f"{chunk.file}#row={row}", "import", f"{chunk.file} row {row}: {reason}")
    if len(tally.failures) < MAX_REPORTED:
        tally.failures.append({"file": chunk.file, "row": row, "uri": uri, "reason": reason})
