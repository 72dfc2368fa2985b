"""Plan an ingest: scan the roots, then diff every file against the store.

A file is new or changed (full work), unchanged and complete (skipped), unchanged but still
without the transcript or the text reading this run asks for (those stages only, no embedding),
of a kind this run leaves out (excluded), or unreadable by the scan (a failure for the writer
to record). The plan only reads the store; the writer writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from assetlens.enrich.records import size_mtime
from assetlens.enrich.scan import Candidate, Kind, ScanFailure, path_uri
from assetlens.enrich.transcribe import needs_transcript
from assetlens.enrich.work import FULL, FileWork
from assetlens.search.store import Asset, Store


@dataclass
class Plan:
    """What an ingest has to do.

    Attributes:
        work: Files for the stages, in scan order.
        failures: Paths the scan could not read.
        skipped: Unchanged, complete files.
        excluded: Files of a kind this run leaves out (``--no-video``, ``--no-audio``).
    """

    work: list[FileWork] = field(default_factory=list)
    failures: list[ScanFailure] = field(default_factory=list)
    skipped: int = 0
    excluded: int = 0

    @property
    def total(self) -> int:
        """Every file the scan found."""
        return len(self.work) + len(self.failures) + self.skipped + self.excluded


def plan_ingest(
    store: Store,
    items: Iterable[Candidate | ScanFailure],
    *,
    kinds: frozenset[str],
    transcribe: bool,
    force: bool,
    ocr: bool = False,
) -> Plan:
    """Diff scanned files against the store.

    Args:
        store: The library.
        items: What the scan found.
        kinds: The kinds this run ingests (``image``, ``video``, ``audio``).
        transcribe: Whether this run transcribes speech.
        force: Redo every file, changed or not.
        ocr: Whether this run reads text in pictures.
    """
    plan = Plan()
    todo = FULL - ({"transcribe"} if not transcribe else set()) - ({"ocr"} if not ocr else set())
    unread = set(store.ocr.unread()) if ocr else set()
    for item in items:
        existing = store.asset_by_uri(path_uri(item.path))
        if isinstance(item, Candidate) and item.kind not in kinds:
            plan.excluded += 1
        elif not force and existing is not None and _unchanged(store, item, existing):
            later = {"transcribe"} if transcribe and needs_transcript(existing) else set()
            later |= {"decode", "ocr"} if existing.id in unread else set()
            if later and isinstance(item, Candidate):
                plan.work.append(later_work(item, existing, frozenset(later)))
            else:
                plan.skipped += 1
        elif isinstance(item, ScanFailure):
            plan.failures.append(item)
        else:
            plan.work.append(FileWork(item, todo))
    return plan


def later_work(candidate: Candidate, asset: Asset, todo: frozenset[str]) -> FileWork:
    """Work on a stored asset's file for stages after embedding (its content must not have changed)."""
    return FileWork(candidate, todo, asset_id=asset.id, kind=asset.kind, content_hash=asset.content_hash)


def picture_work(assets: Sequence[Asset], todo: frozenset[str]) -> list[FileWork]:
    """:func:`later_work` on the files of the ingested images and videos among ``assets``, as the
    library recorded them (no scan)."""
    return [
        later_work(
            Candidate(Path(a.uri), cast(Kind, a.kind), a.mime or "", a.size or 0, a.mtime or 0.0), a, todo
        )
        for a in assets
        if a.status == "ok" and a.kind in ("image", "video")
    ]


def _unchanged(store: Store, item: Candidate | ScanFailure, existing: Asset) -> bool:
    """Same size and mtime as stored, and complete (embedded, sound-only, or failed)."""
    size, mtime = size_mtime(item.path) if isinstance(item, ScanFailure) else (item.size, item.mtime)
    if existing.size != size or existing.mtime != mtime:
        return False
    return existing.status == "failed" or existing.kind == "audio" or store.has_vectors(existing.id)
