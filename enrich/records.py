"""What ingest writes for one file: asset rows from decoded files, reused content, failures.

The pipeline decides what happens to a file; these functions turn that into store writes,
inside the caller's transaction.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from assetlens.enrich.scan import Candidate, path_uri
from assetlens.enrich.work import FileWork
from assetlens.search.store import Asset, Store, now_iso

Reuse = Literal["touched", "renamed", "duplicate"]
_COPIED = ("kind", "mime", "width", "height", "duration", "created", "embedded", "exif", "xmp", "media",
           "poster_t")  # fmt: skip


def asset_values(p: FileWork, vectors: np.ndarray, duplicate_of: int | None) -> dict[str, Any]:
    """The asset row of a decoded file: file facts, embedded metadata or media probe, poster frame."""
    c = p.candidate
    values: dict[str, Any] = {
        "uri": str(c.path), "content_hash": p.content_hash, "kind": p.kind, "mime": c.mime, "size": c.size,
        "mtime": c.mtime, "created": _file_time(c.mtime), "status": "ok", "error": None,
        "duplicate_of": duplicate_of, "ingested_at": now_iso(),
        "poster_t": poster_time(vectors, p.times) if p.kind == "video" else None,
    }  # fmt: skip
    if p.metadata is not None:
        meta = p.metadata.as_dict()
        embedded = {k: v for k, v in meta.items() if k not in ("width", "height", "created", "exif", "xmp")}
        created = meta["created"] or values["created"]
        values |= {"width": meta["width"], "height": meta["height"], "embedded": embedded,
                   "exif": meta["exif"], "xmp": meta["xmp"], "created": created}  # fmt: skip
    if p.probe is not None:
        probe = p.probe.as_dict()
        values |= {"width": probe["width"], "height": probe["height"], "duration": probe["duration"],
                   "media": probe, "created": probe["created"] or values["created"]}  # fmt: skip
    return values


def reuse_known_content(store: Store, p: FileWork) -> Reuse | None:
    """Known content without decoding: a touched file, a rename or an exact duplicate.

    A touched or renamed file keeps its asset, and with it its vectors, tags, transcript and
    text read in its pictures; a duplicate gets copies of them.

    Returns:
        What was done, or None when no embedded asset holds this content any more.
    """
    assert p.content_hash is not None
    c, uri = p.candidate, str(p.candidate.path)
    sources = store.assets_by_hash(p.content_hash)
    if not sources:
        return None
    same = next((a for a in sources if a.uri == uri), None)
    if same is not None:  # touched (mtime changed) but same content
        store.update_asset(same.id, {"size": c.size, "mtime": c.mtime})
        return "touched"
    moved = next((a for a in sources if not os.path.exists(a.uri)), None)
    if moved is not None:
        stale = store.asset_by_uri(uri)
        if stale is not None:
            store.delete_asset(stale.id)
        store.update_asset(moved.id, {"uri": uri, "size": c.size, "mtime": c.mtime})
        return "renamed"
    source = sources[0]
    asset_id = store.upsert_asset(
        {k: getattr(source, k) for k in _COPIED}
        | {
            "uri": uri,
            "content_hash": p.content_hash,
            "size": c.size,
            "mtime": c.mtime,
            "status": "ok",
            "error": None,
            "duplicate_of": original_id(source),
            "ingested_at": now_iso(),
        }
    )
    store.copy_enrichment(source.id, asset_id)
    store.ocr.copy(source.id, asset_id)
    store.duplicates.copy_hashes(source.id, asset_id)  # an exact copy joins its original's group
    store.learned.copy_tags(source.id, asset_id)
    return "duplicate"


def write_failure(
    store: Store, job_id: int, path: Path, stage: str, reason: str, candidate: Candidate | None, model: str
) -> None:
    """Record a file that failed, as a failed asset (skipped until it changes) and a failure row."""
    uri = path_uri(path)
    size, mtime = size_mtime(path)
    asset_id = store.upsert_asset({
        "uri": uri, "content_hash": None, "kind": candidate.kind if candidate else None,
        "mime": candidate.mime if candidate else None, "size": size, "mtime": mtime,
        "status": "failed", "error": f"{stage}: {reason}", "ingested_at": now_iso(),
    })  # fmt: skip
    # The file's old vectors, tags, transcript and text describe content that is no longer there.
    store.replace_vectors(asset_id, model, np.zeros((0, 0), np.float32), [])
    store.replace_tags(asset_id, "clip", [])
    store.replace_segments(asset_id, None, [])
    store.ocr.forget(asset_id)
    store.record_failure(job_id, uri, stage, reason)


def poster_time(vectors: np.ndarray, times: Sequence[float | None]) -> float | None:
    """The most representative keyframe: the one closest to the mean of all keyframes."""
    if not len(vectors):
        return None
    centre = vectors.mean(axis=0)
    return times[int(np.argmax(vectors @ centre))]


def size_mtime(path: Path) -> tuple[int, float]:
    """Size and mtime of a file that failed (of the link itself when it is broken)."""
    try:
        st = path.lstat()
    except OSError:
        return 0, 0.0
    return st.st_size, st.st_mtime


def original_id(asset: Asset) -> int:
    """The first asset of a set of exact duplicates."""
    return asset.duplicate_of or asset.id


def _file_time(mtime: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(mtime))
