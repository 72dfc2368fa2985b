"""Text read in pictures (OCR) in the store: the ``ocr_lines`` and ``ocr_reads`` tables.

:class:`OcrStore` is the one room that writes them (``Store.ocr``); the schema's triggers keep
the full-text document of each asset (``ocr_fts``, one row per asset) equal to its lines, and
lexical search and the ``ocr`` filter read that document.
"""

from __future__ import annotations

import re
import sqlite3
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from assetlens.search.store.base import _chunks
from assetlens.search.store.records import now_iso

_COLUMNS = "asset_id, t, text, x0, y0, x1, y1, confidence, model"


@dataclass(frozen=True)
class TextLine:
    """One line of text read in an asset (an image, or a video keyframe at ``t``).

    Attributes:
        text: The line as read.
        box: ``(x0, y0, x1, y1)`` as fractions of the picture's width and height (top-left origin).
        confidence: The reader's score, 0-1.
        t: Seconds into a video of the keyframe the line was read in; None for a still image.
        model: The reader that read it (its model id).
    """

    text: str
    box: tuple[float, float, float, float]
    confidence: float
    t: float | None = None
    model: str = ""

    def as_dict(self) -> dict[str, Any]:
        """``{"text", "box", "confidence", "t"}``: the JSON form in ``show``, the API and exports."""
        return {"text": self.text, "box": list(self.box), "confidence": self.confidence, "t": self.t}


def best_line(lines: Sequence[TextLine], words: Iterable[str]) -> TextLine | None:
    """The line holding most of ``words`` (case and accents ignored, as the full-text index does).

    Ties go to the more confident line, then the earlier one. None when no line holds any word.
    """
    wanted = {_fold(w) for w in words}
    best, best_key = None, (0, 0.0)
    for line in lines:
        found = len(wanted & set(re.findall(r"\w+", _fold(line.text))))
        if found and (found, line.confidence) > best_key:
            best, best_key = line, (found, line.confidence)
    return best


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _line(row: sqlite3.Row | tuple[Any, ...]) -> TextLine:
    _, t, text, x0, y0, x1, y1, confidence, model = row
    return TextLine(text, (x0, y0, x1, y1), confidence, t, model)


class OcrStore:
    """Reads and writes the OCR text of assets; the caller groups writes in ``Store.transaction``.

    Args:
        db: The library's connection (shared with the rest of the store).
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def replace(self, asset_id: int, model: str, lines: Sequence[TextLine]) -> None:
        """Replace an asset's lines and record it as read by ``model`` (no lines: read, no text)."""
        self.db.execute("DELETE FROM ocr_lines WHERE asset_id = ?", (asset_id,))
        self.db.executemany(
            f"INSERT INTO ocr_lines ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(asset_id, x.t, x.text, *x.box, x.confidence, x.model or model) for x in lines],
        )
        self.db.execute(
            "INSERT INTO ocr_reads VALUES (?, ?, ?) "
            "ON CONFLICT(asset_id) DO UPDATE SET model = excluded.model, read_at = excluded.read_at",
            (asset_id, model, now_iso()),
        )

    def forget(self, asset_id: int) -> None:
        """Drop an asset's lines and its read mark (its content changed and was not read again)."""
        self.db.execute("DELETE FROM ocr_lines WHERE asset_id = ?", (asset_id,))
        self.db.execute("DELETE FROM ocr_reads WHERE asset_id = ?", (asset_id,))

    def copy(self, source: int, target: int) -> None:
        """Give ``target`` (same content: a duplicate or rename) the lines and read mark of ``source``."""
        self.forget(target)
        self.db.execute(
            f"INSERT INTO ocr_lines ({_COLUMNS}) SELECT ?, t, text, x0, y0, x1, y1, confidence, model "
            "FROM ocr_lines WHERE asset_id = ? ORDER BY id",
            (target, source),
        )
        self.db.execute(
            "INSERT INTO ocr_reads SELECT ?, model, read_at FROM ocr_reads WHERE asset_id = ?",
            (target, source),
        )

    def lines_of(self, asset_id: int) -> list[TextLine]:
        """An asset's lines: in time order, then top to bottom, left to right."""
        return self.lines_by_asset([asset_id]).get(asset_id, [])

    def lines_by_asset(self, asset_ids: Sequence[int]) -> dict[int, list[TextLine]]:
        """The lines of several assets (assets without text are absent)."""
        out: dict[int, list[TextLine]] = {}
        for chunk in _chunks([int(i) for i in asset_ids], 500):
            rows = self.db.execute(
                f"SELECT {_COLUMNS} FROM ocr_lines WHERE asset_id IN ({','.join('?' * len(chunk))}) "
                "ORDER BY asset_id, coalesce(t, 0), y0, x0, id",
                chunk,
            )
            for row in rows:
                out.setdefault(int(row[0]), []).append(_line(row))
        return out

    def read_by(self, asset_id: int) -> str | None:
        """The reader (cache key) that last read an asset; None if it was never read."""
        row = self.db.execute("SELECT model FROM ocr_reads WHERE asset_id = ?", (asset_id,)).fetchone()
        return None if row is None else str(row[0])

    def unread(self) -> list[int]:
        """Ids of the images and videos (ingested, with pictures) that were never read."""
        return self.readable(unread=True)

    def readable(self, unread: bool = False) -> list[int]:
        """Ids of the ingested (status ok) images and videos in id order; ``unread``: those never read."""
        rows = self.db.execute(
            "SELECT a.id FROM assets a WHERE a.kind IN ('image', 'video') AND a.status = 'ok' "
            + ("AND NOT EXISTS (SELECT 1 FROM ocr_reads r WHERE r.asset_id = a.id) " if unread else "")
            + "ORDER BY a.id"
        )
        return [int(r[0]) for r in rows]

    def counts(self) -> dict[str, int]:
        """``{"read", "with_text", "lines"}``: assets read, assets with text, lines."""
        read = self.db.execute("SELECT count(*) FROM ocr_reads").fetchone()[0]
        with_text, lines = self.db.execute(
            "SELECT count(DISTINCT asset_id), count(*) FROM ocr_lines"
        ).fetchone()
        return {"read": int(read), "with_text": int(with_text), "lines": int(lines)}
