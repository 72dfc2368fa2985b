"""Transcripts and full-text search in the store: replacing and reading an asset's transcript segments,
phrase search over transcripts (``segments_fts``) and the lexical search over asset words,
transcripts and text read in pictures together (``assets_fts``, ``segments_fts`` and ``ocr_fts``,
ranked by bm25).
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
        self, match: str, where: str, params: Sequence[Any], limit: int
    ) -> list[tuple[int, float, dict[str, Any] | None, bool]]:
        """Assets whose words (name, tags, meta, transcript, OCR text) match an FTS5 expression, best first.

        Args:
            match: A safe FTS5 expression (see ``search.filters.fts_query``).
            where: SQL condition over ``assets a`` (a compiled filter), with ``params``.
            limit: Most assets returned.

        Returns:
            ``(asset_id, bm25, segment, ocr)``: lower bm25 is better; ``segment`` is the best
            matching transcript segment when the transcript matched; ``ocr`` is True when the
            text read in the asset's pictures matched (``Store.ocr`` has its lines).
        """
        rows = self.db.execute(
            f"""
            WITH hits AS (
                SELECT rowid AS asset_id, bm25(assets_fts) AS rank, NULL AS segment_id, 0 AS ocr
                FROM assets_fts WHERE assets_fts MATCH ?
                UNION ALL
                SELECT s.asset_id, bm25(segments_fts), s.id, 0
                FROM segments_fts JOIN segments s ON s.id = segments_fts.rowid
                WHERE segments_fts MATCH ?
                UNION ALL
                SELECT rowid, bm25(ocr_fts), NULL, 1 FROM ocr_fts WHERE ocr_fts MATCH ?
            ),
            best AS (
                SELECT asset_id, min(rank) AS rank, max(ocr) AS ocr,
                       (SELECT h2.segment_id FROM hits h2 WHERE h2.asset_id = hits.asset_id
                        AND h2.segment_id IS NOT NULL ORDER BY h2.rank LIMIT 1) AS segment_id
                FROM hits GROUP BY asset_id
            )
            SELECT b.asset_id, b.rank, s.start, s.end, s.text, s.id, b.ocr
            FROM best b JOIN assets a ON a.id = b.asset_id
            LEFT JOIN segments s ON s.id = b.segment_id
            WHERE {where}
            ORDER BY b.rank, b.asset_id LIMIT ?
            """,
            [match, match, match, *params, limit],
        )
        return [
            (
                int(r[0]),
                float(r[1]),
                None if r[5] is None else {"id": r[5], "start": r[2], "end": r[3], "text": r[4]},
                bool(r[6]),
            )
            for r in rows
        ]
