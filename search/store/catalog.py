"""DAM metadata, facets and export in the store: an asset's user ``meta``, the ``meta`` and
``embedded`` JSON columns and whole assets streamed for export (``search.catalog.meta``,
``search.catalog.export``), and the counts behind facets: per column value, per metadata field
value and per tag.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from assetlens.search.errors import AssetNotFoundError
from assetlens.search.store.base import StoreBase
from assetlens.search.store.records import ASSET_COLUMNS, Asset


class CatalogMixin(StoreBase):
    """User metadata, export reads and facet counts."""

    # --- DAM metadata, facets and export (search.catalog.meta, search.catalog.export) ----------------------

    def asset_ids_by_hash(self, content_hash: str) -> list[int]:
        """Ids of every asset (any status) holding this content, oldest first."""
        rows = self.db.execute("SELECT id FROM assets WHERE content_hash = ? ORDER BY id", (content_hash,))
        return [int(r[0]) for r in rows]

    def meta_of(self, asset_id: int) -> dict[str, Any]:
        """An asset's user ``meta``.

        Raises:
            AssetNotFoundError: No such asset.
        """
        row = self.db.execute("SELECT meta FROM assets WHERE id = ?", (asset_id,)).fetchone()
        if row is None:
            raise AssetNotFoundError(f"no asset with id {asset_id}")
        meta = json.loads(row[0])
        return meta if isinstance(meta, dict) else {}

    def set_meta(self, asset_id: int, meta: dict[str, Any]) -> None:
        """Replace an asset's user ``meta`` (the FTS triggers re-index its words)."""
        self.db.execute(
            "UPDATE assets SET meta = ? WHERE id = ?", (json.dumps(meta, ensure_ascii=False), asset_id)
        )

    def iter_json_column(
        self, column: str, where: str = "1", params: Sequence[Any] = ()
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(asset_id, value)`` of the ``meta`` or ``embedded`` column of assets passing a filter."""
        if column not in ("meta", "embedded"):
            raise ValueError(f"not a JSON metadata column: {column}")
        last = 0
        while True:
            rows = self.db.execute(
                f"SELECT a.id, a.{column} FROM assets a WHERE a.id > ? AND ({where}) "
                "ORDER BY a.id LIMIT 1000",
                [last, *params],
            ).fetchall()
            if not rows:
                return
            for asset_id, text in rows:
                yield int(asset_id), json.loads(text)
            last = int(rows[-1][0])

    def iter_assets(
        self, where: str = "1", params: Sequence[Any] = (), batch: int = 500
    ) -> Iterator[list[Asset]]:
        """Assets passing a compiled filter, in id order, a batch at a time (keyset pages: no big result)."""
        last = 0
        while True:
            rows = self.db.execute(
                f"SELECT {', '.join('a.' + c.strip() for c in ASSET_COLUMNS.split(','))} FROM assets a "
                f"WHERE a.id > ? AND ({where}) ORDER BY a.id LIMIT ?",
                [last, *params, batch],
            ).fetchall()
            if not rows:
                return
            yield [Asset.from_row(r) for r in rows]
            last = int(rows[-1]["id"])

    def count_matching(self, where: str = "1", params: Sequence[Any] = ()) -> int:
        """How many assets pass a compiled filter."""
        row = self.db.execute(f"SELECT count(*) FROM assets a WHERE {where}", list(params)).fetchone()
        return int(row[0])

    def facet_values(
        self, value_sql: str, where: str, params: Sequence[Any], limit: int, prefix: int | None = None
    ) -> list[tuple[Any, int]]:
        """Asset counts per value of a column expression of ``assets a`` (built by our code), NULLs left out.

        Args:
            value_sql: The expression (a built-in field's SQL from ``search.filters``).
            where: A compiled filter over ``assets a``, with ``params``.
            limit: Most values returned, most frequent first (ties by value).
            prefix: Count by the first ``prefix`` characters (dates by year, month or day).
        """
        value = value_sql if prefix is None else f"substr({value_sql}, 1, {int(prefix)})"
        rows = self.db.execute(
            f"SELECT v, count(*) AS n FROM (SELECT {value} AS v FROM assets a WHERE {where}) "
            "WHERE v IS NOT NULL GROUP BY v ORDER BY n DESC, v LIMIT ?",
            [*params, limit],
        )
        return [(r[0], int(r[1])) for r in rows]

    def facet_json(
        self, path: str, where: str, params: Sequence[Any], limit: int, prefix: int | None = None
    ) -> list[tuple[str, Any, int]]:
        """Asset counts per value of a metadata field: user ``meta`` wins over ``embedded`` (as in filters).

        A list counts each of its elements (an asset once per distinct element); objects and nulls
        are left out.

        Args:
            path: The JSON path of the field (``$."camera"."make"``).
            where: A compiled filter over ``assets a``, with ``params``.
            limit: Most values returned, most frequent first (ties by value).
            prefix: Count text values by their first ``prefix`` characters (dates by year, month, day).

        Returns:
            ``(json type, value, count)``: the type is json_each's (``text``, ``integer``, ``real``,
            ``true``, ``false``).
        """
        atom = "j.atom"
        if prefix is not None:
            atom = f"CASE WHEN j.type = 'text' THEN substr(j.atom, 1, {int(prefix)}) ELSE j.atom END"
        rows = self.db.execute(
            f"SELECT j.type, {atom} AS v, count(DISTINCT a.id) AS n FROM assets a, "
            "json_each(coalesce(a.meta -> ?, a.embedded -> ?)) j "
            f"WHERE ({where}) AND j.type NOT IN ('null', 'object', 'array') "
            "AND (j.key IS NULL OR typeof(j.key) = 'integer') "
            "GROUP BY j.type, v ORDER BY n DESC, v LIMIT ?",
            [path, path, *params, limit],
        )
        return [(str(r[0]), r[1], int(r[2])) for r in rows]

    def facet_tags(self, where: str, params: Sequence[Any], limit: int) -> list[tuple[str, int]]:
        """Asset counts per tag (any source) among the assets passing a compiled filter."""
        rows = self.db.execute(
            f"SELECT t.tag, count(DISTINCT t.asset_id) AS n FROM tags t JOIN assets a ON a.id = t.asset_id "
            f"WHERE {where} GROUP BY t.tag ORDER BY n DESC, t.tag LIMIT ?",
            [*params, limit],
        )
        return [(str(r[0]), int(r[1])) for r in rows]
