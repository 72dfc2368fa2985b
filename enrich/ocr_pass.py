"""``assetlens ocr``: read the text in stored images and videos again, without re-embedding.

The same seam as ingest (stages -> executor -> writer), with two stages: :class:`Decode` makes
the OCR pictures alone (an image's draft, a video's keyframes at the OCR frame side; no CLIP
input) after checking the file against the content it had when ingested, and :class:`Ocr`
reads them. The writer replaces each asset's lines, a batch per transaction, under the
library's writer lock, in a job of kind ``ocr``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from assetlens.enrich.lock import writer_lock
from assetlens.enrich.pipeline import IngestOptions, run_stored_pass
from assetlens.enrich.plan import picture_work
from assetlens.enrich.stages import Decode, Stage
from assetlens.enrich.text_stages import Ocr
from assetlens.enrich.writer import IngestReport
from assetlens.models.ocr import TextReader
from assetlens.search.store import Asset, Store

READ = frozenset({"decode", "ocr"})


@dataclass
class TextReport:
    """What ``assetlens ocr`` did; ``as_dict`` is its ``--json`` document.

    Attributes:
        job_id: The run's job (kind ``ocr``).
        read: Assets whose text was read (with or without any text found).
        with_text: Of the assets chosen, those that now have lines; ``lines``: how many.
        failed: Assets whose text could not be read (gone, changed, unreadable; see
            ``failures``, stage ``ocr``): they keep their old lines.
        skipped: Assets without pictures (audio) or failed at ingest.
        mode: ``auto`` or ``on``. model: The reader's cache key, as recorded with each read.
    """

    job_id: int
    read: int = 0
    with_text: int = 0
    lines: int = 0
    failed: int = 0
    skipped: int = 0
    mode: str = "on"
    model: str = ""
    interrupted: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_text(
    store: Store, reader: TextReader, assets: Sequence[Asset], image_size: int, options: IngestOptions
) -> TextReport:
    """Read the text in stored images and videos, in the mode of ``reader.settings``.

    Args:
        store: The library.
        reader: The OCR model and settings (``settings.ocr``: ``auto`` or ``on``).
        assets: The assets to read.
        image_size: The CLIP input side: images are decoded as ingest decodes them, so that
            ``auto`` checks the same draft for text.
        options: Workers and batch size (0: as for a CPU ingest), largest image, keyframe
            rules, engine, progress.

    Raises:
        LibraryBusyError: Another process writes to the library.
        KeyboardInterrupt: Finished batches are kept; the job is marked ``interrupted``.
    """
    with writer_lock(store, "ocr"):
        work = picture_work(assets, READ)

        def summarise(written: IngestReport, status: str) -> tuple[TextReport, dict[str, int]]:
            mode, model = reader.settings.ocr, reader.cache_key
            report = TextReport(written.job_id, skipped=len(assets) - len(work), mode=mode, model=model)
            report.read, report.failed = written.ocr_read, written.ocr_failed
            report.interrupted = status == "interrupted"
            lines = store.ocr.lines_by_asset([w.asset_id for w in work if w.asset_id is not None])
            report.with_text, report.lines = len(lines), sum(len(x) for x in lines.values())
            return report, {k: v for k, v in report.as_dict().items() if type(v) is int and k != "job_id"}

        stages: list[Stage] = [
            Decode(
                image_size, options.max_pixels, options.keyframes, frozenset(), reader.settings.ocr_frame_side
            ),
            Ocr(reader.settings, options.max_pixels, reader),
        ]
        args = {"assets": [a.id for a in assets], "mode": reader.settings.ocr, "model": reader.cache_key}
        return run_stored_pass(store, "ocr", args, work, stages, options, summarise)
