"""Transcripts and full-text search in the store: replacing and reading an asset's transcript segments,
phrase search over transcripts (``segments_fts``) and the lexical search over asset words,
transcripts and text read in pictures together (``assets_fts``, ``segments_fts`` and ``ocr_fts``,
ranked by match level, then bm25).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from assetlens.search.store.base import StoreBase, _chunks


class TranscriptsMixin(StoreBase):
    """Transcript segments and the FTS5 indexes."""

    # --- transcripts -----------------------------------------------------------------------

    def replace_segments(self, asset_id: int, model: str | None, segments: Sequence[dict[str, Any]]) -> None:
        """Replace an asset's transcript; ``model`` None marks it as not transcribed."""
        self.db.execute("DELETE FROM segments WHERE asset_id = ?", (asset_id,))
        self.db.executemany(
            "INSERT INTO segments (asset_id, start, end, text, words, language, confidence) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    asset_id,
                    s["start"],
                    s["end"],
                    s["text"],
                    json.dumps(s.get("words", [])),
                    s.get("language"),
                    s.get("confidence"),
                )
                for s in segments
            ],
        )
        self.db.execute("UPDATE assets SET transcript_model = ? WHERE id = ?", (model, asset_id))

    def segments_of(self, asset_id: int) -> list[dict[str, Any]]:
        """An asset's transcript segments in time order."""
        rows = self.db.execute(
            "SELECT id, start, end, text, words, language, confidence FROM segments "
            "WHERE asset_id = ? ORDER BY start",
            (asset_id,),
        )
        return [{**dict(r), "words": json.loads(r["words"])} for r in rows]

    def segments_by_asset(self, asset_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
        """Transcript segments (start, end, text, language) of several assets, in time order."""
        out: dict[int, list[dict[str, Any]]] = {}
        for chunk in _chunks([int(i) for i in asset_ids], 500):
            marks = ",".join("?" * len(chunk))
            for row in self.db.execute(
                f"SELECT asset_id, start, end, text, language FROM segments WHERE asset_id IN ({marks}) "
                "ORDER BY asset_id, start",
                chunk,
            ):
                out.setdefault(int(row[0]), []).append(
                    {"start": row[1], "end": row[2], "text": row[3], "language": row[4]}
                )
        return out

    def count_transcribed(self) -> int:
        """Assets that have a transcript (possibly empty: no speech)."""
        return int(
            self.db.execute("SELECT count(*) FROM assets WHERE transcript_model IS NOT NULL").fetchone()[0]
        )

    # --- lexical search (search.query) -----------------------------------------------------

    def lexical_search(
        self, levels: Sequence[tuple[int, str]], where: str, params: Sequence[Any], limit: int
    ) -> list[tuple[int, int, float, dict[str, Any] | None, bool]]:
        """Assets whose words (name, tags, meta, transcript, OCR text) match, best level first, then by bm25.

        Args:
            levels: ``(level, expression)`` pairs: safe FTS5 expressions of the same words, each
                matching more loosely than the one before (see ``search.ranking.LexicalQuery``);
                the last decides which assets match at all.
            where: SQL condition over ``assets a`` (a compiled filter), with ``params``.
            limit: Most assets returned.

        Returns:
            ``(asset_id, level, bm25, segment, ocr)`` for each asset at the highest level it
            reaches (in a file field, in one transcript segment or in the text read in its
            pictures): lower bm25 is better; ``segment`` is the best matching transcript segment
            when the transcript matched; ``ocr`` is True when the text read in the asset's
            pictures matched (``Store.ocr`` has its lines).
        """
        scans, args = [], []
        for level, expression in levels:
            scans.append(
                f"SELECT rowid AS asset_id, {int(level)} AS level, bm25(assets_fts) AS bm25, "
                "NULL AS segment_id, 0 AS ocr FROM assets_fts WHERE assets_fts MATCH ?"
            )
            scans.append(
                f"SELECT s.asset_id, {int(level)}, bm25(segments_fts), s.id, 0 FROM segments_fts "
                "JOIN segments s ON s.id = segments_fts.rowid WHERE segments_fts MATCH ?"
            )
            scans.append(
                f"SELECT rowid, {int(level)}, bm25(ocr_fts), NULL, 1 FROM ocr_fts WHERE ocr_fts MATCH ?"
            )
            args += [expression, expression, expression]
        rows = self.db.execute(
            f"""
            WITH hits AS ({" UNION ALL ".join(scans)}),
            ranked AS (
                SELECT asset_id, level, bm25,
                       row_number() OVER (PARTITION BY asset_id ORDER BY level DESC, bm25, segment_id) AS nth,
                       first_value(segment_id) OVER (
                           PARTITION BY asset_id ORDER BY segment_id IS NULL, level DESC, bm25, segment_id
                       ) AS segment_id,
                       max(ocr) OVER (PARTITION BY asset_id) AS ocr
                FROM hits
            )
            SELECT b.asset_id, b.level, b.bm25, s.start, s.end, s.text, s.id, b.ocr
            FROM ranked b JOIN assets a ON a.id = b.asset_id
            LEFT JOIN segments s ON s.id = b.segment_id
            WHERE b.nth = 1 AND {where}
            ORDER BY b.level DESC, b.bm25, b.asset_id LIMIT ?
            """,
            [*args, *params, limit],
        )
        return [
            (
                int(r[0]),
                int(r[1]),
                float(r[2]),
                None if r[6] is None else {"id": r[6], "start": r[3], "end": r[4], "text": r[5]},
                bool(r[7]),
            )
            for r in rows
        ]
