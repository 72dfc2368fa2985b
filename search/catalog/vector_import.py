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

import functools
import json
import math
import mimetypes
import posixpath
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assetlens.search.catalog.vector_sources import (
    Chunk,
    VectorImportError,
    count_rows,
    model_of,
    read_chunks,
    sources,
)
from assetlens.search.errors import ModelMismatchError
from assetlens.search.prefetch import prefetch
from assetlens.search.store import Store
from assetlens.search.store.vectors import VECTOR_DTYPE

__all__ = ["VectorImportError", "VectorImportReport", "import_vectors"]

MAX_REPORTED = 1000
KINDS = ("image", "video", "audio")
TAG_SOURCES = ("clip", "user", "import")


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

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Counts that join only if the batch's transaction commits (a Ctrl-C rolls it back)."""
        counts, failures = dict(self.counts), len(self.failures)
        try:
            yield
        except BaseException:
            self.counts = counts
            del self.failures[failures:]
            raise


def import_vectors(
    store: Store,
    paths: list[Path],
    model: str | None = None,
    *,
    batch_rows: int = 50_000,
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
        for batch in prefetch(_checked_batches(found, batch_rows, dim), "import-reader"):
            dim = batch.dim
            with tally.batch(), store.transaction():
                store.ensure_model(model)
                _write(store, batch, model, job, tally)
                store.job_progress(job, tally.counts)
            if progress is not None:
                progress(tally.counts["rows"], total)
    except BaseException:
        store.finish_job(job, "failed", tally.counts)
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


def _first_dim(chunk: Chunk) -> int:
    lengths = chunk.lengths[chunk.lengths > 0]
    return int(np.bincount(lengths).argmax()) if len(lengths) else 0


@dataclass(frozen=True)
class _Batch:
    """A chunk's rows, checked once: why each bad row fails, and what the good rows hold.

    Attributes:
        chunk: The rows as read. dim: The library's vector dimension.
        reasons: Per row, why it cannot be imported (None: it can).
        metas: Per row, its meta as a JSON object string (None: none given).
        tags: Per row, its tags as ``(tag, score, source, model, t)`` (None: none given).
        rows: ``(uri, t) -> row`` of the good rows (the last row of a repeated ``(uri, t)``).
        blobs: The stored bytes of the vector of each entry of ``rows``, in its order.
        new_values: ``uri ->`` the asset row to insert if the uri is new (from its first row).
    """

    chunk: Chunk
    dim: int
    reasons: list[str | None]
    metas: list[str | None]
    tags: list[list[tuple[str, float, str, str | None, float | None]] | None]
    rows: dict[tuple[str, float | None], int]
    blobs: list[bytes]
    new_values: dict[str, tuple[str, str | None, str | None, str | None, str]]


def _checked_batches(found: list[tuple[str, Path]], batch_rows: int, dim: int) -> Iterator[_Batch]:
    for layout, path in found:
        for chunk in read_chunks(layout, path, batch_rows):
            dim = dim or _first_dim(chunk)
            yield _check(chunk, dim)


def _write(store: Store, batch: _Batch, model: str, job: int, tally: _Tally) -> None:
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


def _cell(chunk: Chunk, name: str, i: int) -> Any:
    values = chunk.columns.get(name)
    return None if values is None else values[i]


def _t(chunk: Chunk, i: int) -> float | None:
    value = _cell(chunk, "t", i)
    return None if value is None else float(value)


def _check(chunk: Chunk, dim: int) -> _Batch:
    n = len(chunk.uris)
    finite = np.isfinite(chunk.vectors).all(axis=1) if chunk.vectors.shape[1] else np.ones(n, bool)
    nonzero = np.abs(chunk.vectors).max(axis=1) > 0 if chunk.vectors.shape[1] else np.zeros(n, bool)
    reasons: list[str | None] = []
    metas: list[str | None] = []
    tags: list[list[tuple[str, float, str, str | None, float | None]] | None] = []
    for i in range(n):
        uri, length = chunk.uris[i], int(chunk.lengths[i])
        meta = given = reason = None
        if not isinstance(uri, str) or not uri.strip():
            reason = "missing uri"
        elif length < 0:
            reason = "missing embedding"
        elif length != dim:
            reason = f"wrong dimension {length}: the library's vectors have {dim}"
        elif not finite[i]:
            reason = "the embedding holds NaN or infinite values"
        elif not nonzero[i]:
            reason = "zero vector (it has no direction to compare)"
        else:
            reason, meta, given = _fields(chunk, i)
        reasons.append(reason)
        metas.append(meta)
        tags.append(given)
    vectors = chunk.vectors if chunk.vectors.shape[1] == dim else np.zeros((n, dim), np.float32)
    norms = np.linalg.norm(vectors, axis=1)
    stored = (vectors / np.where(norms > 0, norms, 1)[:, None]).astype(VECTOR_DTYPE)
    rows: dict[tuple[str, float | None], int] = {}
    for i in range(n):
        if reasons[i] is None:
            rows[(chunk.uris[i], _t(chunk, i))] = i
    new_values: dict[str, tuple[str, str | None, str | None, str | None, str]] = {}
    for (uri, _), i in rows.items():
        if uri not in new_values:
            new_values[uri] = _asset_values(chunk, i, uri, metas[i])
    blobs = [stored[i].tobytes() for i in rows.values()]
    return _Batch(chunk, dim, reasons, metas, tags, rows, blobs, new_values)


def _fields(
    chunk: Chunk, i: int
) -> tuple[str | None, str | None, list[tuple[str, float, str, str | None, float | None]] | None]:
    """Why row ``i``'s other fields are bad (None: they are good), its meta and its tags."""
    t, kind = _cell(chunk, "t", i), _cell(chunk, "kind", i)
    if t is not None and not (_finite(t) and t >= 0):
        return f"t must be seconds >= 0, got {t!r}", None, None
    if kind is not None and kind not in KINDS:
        return f"kind must be one of {', '.join(KINDS)}, got {kind!r}", None, None
    try:
        return None, _meta_json(_cell(chunk, "meta", i)), _tags(_cell(chunk, "tags", i))
    except (ValueError, TypeError, KeyError) as exc:
        return str(exc), None, None


def _meta_json(value: Any) -> str | None:
    if value is None:
        return None
    # Python reads and writes NaN and Infinity; JSON (and SQLite, which indexes the meta's words)
    # has neither: such a row fails alone instead of failing its whole batch at commit.
    doc = json.loads(value, parse_constant=_not_json) if isinstance(value, str | bytes) else value
    if not isinstance(doc, dict):
        raise ValueError(f"meta must be a JSON object, got {type(doc).__name__}")
    return value if isinstance(value, str) else json.dumps(doc, ensure_ascii=False, allow_nan=False)


def _not_json(constant: str) -> None:
    raise ValueError(f"meta holds {constant}, which JSON does not allow")


def _tags(value: Any) -> list[tuple[str, float, str, str | None, float | None]] | None:
    if value is None:
        return None
    out = []
    for item in value:
        tag, score, t = item["tag"], item["score"], item.get("t")
        source = item.get("source") or "import"
        if not isinstance(tag, str) or not tag.strip() or not _finite(score):
            raise ValueError(f"tags must be {{tag, score}} items with a finite score, got {item!r}")
        if t is not None and not (_finite(t) and t >= 0):
            raise ValueError(f"a tag's t must be seconds >= 0, got {item!r}")
        if source not in TAG_SOURCES:
            raise ValueError(f"tag source must be one of {', '.join(TAG_SOURCES)}, got {source!r}")
        out.append((tag, float(score), source, item.get("model"), None if t is None else float(t)))
    return out


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _asset_values(
    chunk: Chunk, i: int, uri: str, meta: str | None
) -> tuple[str, str | None, str | None, str | None, str]:
    mime = _mime(posixpath.splitext(uri)[1])
    kind = _cell(chunk, "kind", i)
    if kind is None:
        major = (mime or "").split("/")[0]
        kind = major if major in KINDS else ("video" if _t(chunk, i) is not None else "image")
    created = _cell(chunk, "created", i)
    return uri, kind, mime, None if created is None else str(created), meta or "{}"


@functools.lru_cache(maxsize=1024)
def _mime(extension: str) -> str | None:
    """The media type of a file name extension (a few per import: asked once each)."""
    return mimetypes.guess_type(f"file{extension}")[0]


def _update_assets(
    store: Store,
    batch: _Batch,
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
