"""Readers of embedding files for :mod:`search.catalog.vector_import`, a bounded batch at a time.

Two layouts:

* Parquet (a file, or a folder of ``*.parquet``): ``uri`` (required), ``embedding`` (a list or
  fixed-size list of float16/float32/float64), and optionally ``t``, ``kind``, ``meta`` (a JSON
  object, as text or a struct), ``tags`` (a list of ``{tag, score}`` structs, optionally with
  ``source``, ``model`` and ``t``) and ``created``. The schema's ``assetlens.model`` metadata
  (written by ``assetlens export --format parquet``) names the model.
* clip-retrieval's output folder: ``img_emb/img_emb_N.npy`` (float16 or float32 rows) with
  ``metadata/metadata_N.parquet`` (the same rows in the same order; ``image_path`` or ``url`` is
  the uri, ``caption`` goes to ``meta.caption``). The arrays are memory-mapped, so a shard of any
  size is read a batch at a time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from assetlens.search.errors import SearchError

MODEL_KEY = b"assetlens.model"
OPTIONAL = ("t", "kind", "meta", "tags", "created")


class VectorImportError(SearchError):
    """An embedding file or folder that cannot be imported at all (each row's faults are reported instead)."""


@dataclass
class Chunk:
    """A batch of rows of one file, as read (validated by the importer).

    Attributes:
        file: The file the rows come from.
        first_row: 0-based row number of the first row in that file.
        uris: Each row's uri (None or empty: missing).
        vectors: ``(n, dim)`` float32; rows whose ``lengths`` differ from ``dim`` hold zeros.
        lengths: Each row's embedding length (-1: no embedding).
        columns: Optional columns present in the file, as Python lists.
    """

    file: str
    first_row: int
    uris: list[Any]
    vectors: np.ndarray
    lengths: np.ndarray
    columns: dict[str, list[Any]]


def sources(paths: list[Path]) -> list[tuple[str, Path]]:
    """``(layout, path)`` of every file to read, in order: ``parquet`` or ``clip-retrieval`` folders.

    Raises:
        VectorImportError: A path that does not exist, or a folder with nothing to import.
    """
    out: list[tuple[str, Path]] = []
    for path in paths:
        if not path.exists():
            raise VectorImportError(f"{path}: no such file or folder")
        if path.is_dir() and (path / "img_emb").is_dir():
            out.append(("clip-retrieval", path))
        elif path.is_dir():
            files = sorted(path.glob("*.parquet"))
            if not files:
                raise VectorImportError(
                    f"{path}: no *.parquet files, and not a clip-retrieval folder (img_emb/, metadata/)"
                )
            out.extend(("parquet", f) for f in files)
        else:
            out.append(("parquet", path))
    return out


def count_rows(layout: str, path: Path) -> int:
    """Rows in a source (for progress), from Parquet footers and array headers."""
    if layout == "parquet":
        return int(_open(path).metadata.num_rows)
    return sum(int(np.load(f, mmap_mode="r").shape[0]) for f, _ in _shards(path))


def model_of(layout: str, path: Path) -> str | None:
    """The model a Parquet file says its embeddings come from (its ``assetlens.model`` metadata)."""
    if layout != "parquet":
        return None
    meta = _open(path).schema_arrow.metadata or {}
    return meta[MODEL_KEY].decode() if MODEL_KEY in meta else None


def read_chunks(layout: str, path: Path, batch_rows: int, dim: int = 0) -> Iterator[Chunk]:
    """The rows of a source, ``batch_rows`` at a time, their vectors read at length ``dim`` (0: the
    most common length of each batch)."""
    if layout == "parquet":
        yield from _parquet_chunks(path, batch_rows, dim)
    else:
        yield from _clip_retrieval_chunks(path, batch_rows)


def _open(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise VectorImportError(f"{path}: not a readable Parquet file ({exc})") from exc


def _parquet_chunks(path: Path, batch_rows: int, dim: int) -> Iterator[Chunk]:
    file = _open(path)
    names = set(file.schema_arrow.names)
    for required in ("uri", "embedding"):
        if required not in names:
            raise VectorImportError(
                f"{path}: no {required!r} column (columns: {', '.join(sorted(names))}); "
                f"an embedding file needs 'uri' and 'embedding'"
            )
    kind = file.schema_arrow.field("embedding").type
    if not _is_list(kind):
        raise VectorImportError(f"{path}: the 'embedding' column is {kind}, not a list of floats")
    wanted = ["uri", "embedding", *(c for c in OPTIONAL if c in names)]
    first = 0
    try:
        # One thread: the import reads in a thread of its own beside the writing one, and a pool
        # of Arrow's decoding one column at a time costs more than it gives (8.5 s against
        # 10.7 s for 1M 512-d rows).
        for batch in file.iter_batches(batch_size=batch_rows, columns=wanted, use_threads=False):
            vectors, lengths = embedding_matrix(batch.column("embedding"), dim)
            columns = {c: _python(batch.column(c)) for c in wanted[2:]}
            yield Chunk(str(path), first, batch.column("uri").to_pylist(), vectors, lengths, columns)
            first += batch.num_rows
    except pa.ArrowException as exc:
        raise VectorImportError(f"{path}: unreadable after row {first} ({exc})") from exc


def _is_list(kind: pa.DataType) -> bool:
    is_list = pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)
    return is_list and (pa.types.is_floating(kind.value_type) or pa.types.is_integer(kind.value_type))


def embedding_matrix(column: pa.Array, dim: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(n, dim)`` float32 rows and each row's length (-1 for null); ``dim`` 0: the most common length.

    Rows of another length are left as zeros; a null inside a list reads as NaN.
    """
    lengths = pc.list_value_length(column).fill_null(-1).to_numpy().astype(np.int64)
    values = pc.list_flatten(column).to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    present = lengths[lengths >= 0]
    if not dim and not len(present):
        return np.zeros((len(lengths), 0), np.float32), lengths
    dim = dim or int(np.bincount(present).argmax())
    if (lengths == dim).all():
        return values.reshape(len(lengths), dim), lengths
    out = np.zeros((len(lengths), dim), np.float32)
    starts = np.cumsum(np.maximum(lengths, 0)) - np.maximum(lengths, 0)
    good = np.flatnonzero(lengths == dim)
    out[good] = values[starts[good, None] + np.arange(dim)]
    return out, lengths


def _python(column: pa.Array) -> list[Any]:
    values = column.to_pylist()
    if pa.types.is_timestamp(column.type) or pa.types.is_date(column.type):
        return [_iso(v) for v in values]
    return values


def _iso(value: Any) -> str | None:
    if isinstance(value, datetime):
        text = value.isoformat()
        return text.replace("+00:00", "Z") if value.tzinfo is not None else text
    if isinstance(value, date):
        return value.isoformat()
    return None if value is None else str(value)


def _shards(folder: Path) -> list[tuple[Path, Path]]:
    """``(img_emb_N.npy, metadata_N.parquet)`` pairs of a clip-retrieval folder, by N."""
    pairs = []
    for npy in sorted((folder / "img_emb").glob("*.npy"), key=_shard_number):
        meta = folder / "metadata" / f"metadata_{_shard_number(npy)}.parquet"
        if not meta.exists():
            raise VectorImportError(f"{npy}: no matching {meta.relative_to(folder)} (rows need their uris)")
        pairs.append((npy, meta))
    if not pairs:
        raise VectorImportError(f"{folder}: clip-retrieval folder without img_emb/*.npy files")
    return pairs


def _shard_number(path: Path) -> int:
    found = re.search(r"(\d+)$", path.stem)
    return int(found.group(1)) if found else -1


def _clip_retrieval_chunks(folder: Path, batch_rows: int) -> Iterator[Chunk]:
    for npy, meta_path in _shards(folder):
        try:
            matrix = np.load(npy, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise VectorImportError(f"{npy}: not a readable .npy array ({exc})") from exc
        meta = _open(meta_path)
        names = set(meta.schema_arrow.names)
        key = next((c for c in ("image_path", "url", "uri") if c in names), None)
        if key is None or matrix.ndim != 2:
            raise VectorImportError(
                f"{meta_path}: no image_path or url column" if key is None else f"{npy}: not a 2-d array"
            )
        if meta.metadata.num_rows != matrix.shape[0]:
            raise VectorImportError(
                f"{meta_path} has {meta.metadata.num_rows} rows but {npy.name} has {matrix.shape[0]}"
            )
        wanted = [key, *(["caption"] if "caption" in names else [])]
        first = 0
        for batch in meta.iter_batches(batch_size=batch_rows, columns=wanted):
            n = batch.num_rows
            vectors = np.asarray(matrix[first : first + n], dtype=np.float32)
            columns: dict[str, list[Any]] = {}
            if "caption" in wanted:
                columns["meta"] = [
                    None if c is None else {"caption": c} for c in batch.column("caption").to_pylist()
                ]
            lengths = np.full(n, matrix.shape[1], np.int64)
            yield Chunk(str(npy), first, batch.column(key).to_pylist(), vectors, lengths, columns)
            first += n
