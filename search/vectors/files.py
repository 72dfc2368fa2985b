"""The files of a vector index in a data dir, read and written as one consistent set.

``index.faiss`` (the FAISS index), ``index.rows.npz`` (vector id, asset id and alive flag of every
row), the JSON sidecar ``index.json`` (:class:`IndexState`) and, for ``ivfpq``, the float16 re-rank
file it names (``index.<token>.f16``: a new name per build, appended in place as the index grows).
Each of the first three is written to a temporary name then renamed; the generation ties them
together, so a reader that catches a save half-way sees a mismatch and reads again.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import faiss as _faiss
import numpy as np

from assetlens.search.vectors.build import Snapshot
from assetlens.search.vectors.rerank import RerankFile

INDEX_FILE = "index.faiss"
SIDECAR_FILE = "index.json"
ROWS_FILE = "index.rows.npz"
FORMAT = 2  # sidecar layout; older sidecars mean a rebuild (``rerank`` was added with a default)
# The SWIG module's stubs miss keyword constructors and free functions used here.
faiss: Any = _faiss


@dataclass(frozen=True)
class IndexState:
    """What an index file holds (its sidecar)."""

    model: str | None
    dim: int
    last_id: int
    epoch: int
    count: int  # rows of the FAISS index, tombstones included
    kind: str = "flat"
    params: dict[str, int] = field(default_factory=dict)
    deleted: int = 0
    generation: str = ""
    format: int = FORMAT
    rerank: str = ""  # the re-rank file's name (ivfpq)


def sidecar_stat(data_dir: Path) -> tuple[int, int, int] | None:
    """Inode, modification time and size of the sidecar: they change with every save."""
    try:
        st = (Path(data_dir) / SIDECAR_FILE).stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def read_index_files(data_dir: Path) -> tuple[Snapshot, IndexState, np.ndarray] | None:
    """The saved index, its state and alive flags; None when missing, unreadable or caught mid-save."""
    data_dir = Path(data_dir)
    try:
        state = IndexState(**json.loads((data_dir / SIDECAR_FILE).read_text()))
        if state.format != FORMAT:
            return None
        with np.load(data_dir / ROWS_FILE) as rows:
            generation = str(rows["generation"])
            ids, assets, alive = rows["ids"], rows["assets"], rows["alive"]
        if generation != state.generation:
            return None
        index = faiss.read_index(str(data_dir / INDEX_FILE))
        rerank = (
            RerankFile(data_dir / state.rerank, state.dim, state.count) if state.kind == "ivfpq" else None
        )
    except (OSError, ValueError, TypeError, KeyError, RuntimeError):
        return None  # unreadable cache: the caller rebuilds it from the store
    if not (index.ntotal == state.count == len(ids) == len(assets) == len(alive)):
        return None
    snap = Snapshot(index, ids.astype(np.int64), assets.astype(np.int64), state.kind, state.params,
                    state.dim, state.last_id, rerank)  # fmt: skip
    return snap, state, alive.astype(bool)


def write_index_files(
    data_dir: Path, main: Any, state: IndexState, ids: np.ndarray, assets: np.ndarray, alive: np.ndarray
) -> IndexState:
    """Save atomically under a new generation; returns the state written.

    The re-rank file a previous save named, if another, is removed: readers that mapped it keep
    reading it (the inode lives on until they let go).
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    sidecar = data_dir / SIDECAR_FILE
    try:
        replaced = str(json.loads(sidecar.read_text()).get("rerank", ""))
    except (OSError, ValueError, AttributeError):
        replaced = ""
    generation = secrets.token_hex(8)
    state = IndexState(**{**asdict(state), "generation": generation})
    pid = os.getpid()
    tmp_index, tmp_rows = data_dir / f".{INDEX_FILE}.{pid}.tmp", data_dir / f".index.rows.{pid}.tmp.npz"
    tmp_sidecar = data_dir / f".{SIDECAR_FILE}.{pid}.tmp"
    faiss.write_index(main, str(tmp_index))
    np.savez(tmp_rows, ids=ids, assets=assets, alive=alive, generation=generation)
    tmp_sidecar.write_text(json.dumps(asdict(state)))
    os.replace(tmp_index, data_dir / INDEX_FILE)
    os.replace(tmp_rows, data_dir / ROWS_FILE)
    os.replace(tmp_sidecar, sidecar)
    if replaced and replaced != state.rerank:
        (data_dir / replaced).unlink(missing_ok=True)
    return state
