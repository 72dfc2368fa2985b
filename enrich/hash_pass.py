"""Perceptual hashes for assets stored before AssetLens computed them: their files are read again.

An ingest hashes every image and keyframe as it decodes them (the ``hash`` stage). A library
ingested earlier has vectors but no hashes, so it has no near-duplicates: :func:`fill_hashes`
runs the ingest's seam (stages -> executor -> writer) over those assets with two stages.
:class:`Decode` checks each file against the content it had when ingested and makes the small
greyscale copies alone (a JPEG decodes at its smallest DCT scale that still gives the hash's
side; a video's keyframes are chosen afresh, as frames are matched by content, not by time),
and :class:`Hash` hashes them. The writer stores the hashes, a batch per transaction, in a job
of kind ``hash``; a file that cannot be read is a failure of stage ``hash``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from assetlens.enrich.phash import THUMB_SIDE
from assetlens.enrich.pipeline import IngestOptions, run_stored_pass
from assetlens.enrich.plan import picture_work
from assetlens.enrich.stages import Decode, Hash, Stage
from assetlens.enrich.writer import IngestReport
from assetlens.search.store import Asset, Store

HASH = frozenset({"decode", "hash"})


@dataclass
class HashFill:
    """What :func:`fill_hashes` did.

    Attributes:
        job_id: The run's job (kind ``hash``).
        hashed: Assets whose hashes are now stored.
        unreadable: ``{"asset_id", "uri", "reason"}`` of the files that could not be read (gone,
            changed since ingested, corrupt): they stay without hashes, and are tried again later.
    """

    job_id: int
    hashed: int = 0
    unreadable: list[dict[str, Any]] = field(default_factory=list)


def fill_hashes(store: Store, assets: Sequence[Asset], options: IngestOptions) -> HashFill:
    """Hash the files of stored images and videos and store the hashes.

    Args:
        store: The library (the caller holds its writer lock).
        assets: The assets to hash (others than ingested images and videos are left out).
        options: Workers and batch size (0: as for a CPU ingest), largest image, keyframe
            rules, engine, progress.

    Raises:
        KeyboardInterrupt: Finished batches are kept; the job is marked ``interrupted``.
    """
    work = picture_work(assets, HASH)

    def summarise(written: IngestReport, status: str) -> tuple[HashFill, dict[str, int]]:
        ids = {str(w.candidate.path): w.asset_id for w in work}
        unreadable = [
            {"asset_id": ids.get(f["uri"]), "uri": f["uri"], "reason": f["reason"]}
            for f in reversed(store.failures(written.job_id, limit=len(work) + 1))
        ]
        # Each file the writer took got its hashes, or failed to be read.
        fill = HashFill(written.job_id, written.skipped - len(unreadable), unreadable)
        return fill, {"hashed": fill.hashed, "unreadable": len(unreadable)}

    stages: list[Stage] = [Decode(THUMB_SIDE, options.max_pixels, options.keyframes, frozenset()), Hash()]
    args = {"assets": [w.asset_id for w in work]}
    return run_stored_pass(store, "hash", args, work, stages, options, summarise)
