"""Tags learned from examples in the store: ``learned_tags`` and ``learned_tag_examples``.

:class:`LearnedTagStore` (``Store.learned``) is the one room that writes them, and the tags they
give (``tags`` rows of source ``learned``); :mod:`search.learned` fits and applies them.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from assetlens.search.store.records import now_iso

_COLUMNS = (
    "name, model, method, weights, bias, threshold, replaces_vocabulary, report, created_at, trained_at"
)


@dataclass(frozen=True)
class LearnedTag:
    """A tag's classifier: ``score = sigmoid(weights . vector + bias)``, kept at ``threshold`` or above.

    Attributes:
        name: The tag.
        model: The CLIP model whose vectors it was fitted on.
        method: ``logistic`` (the one fitted today; see :mod:`search.learned`).
        weights: ``(dim,)`` float32. bias: The intercept.
        threshold: The least score at which an asset gets the tag.
        replaces_vocabulary: The name is also a vocabulary tag, whose zero-shot tags it replaces.
        report: Cross-validation figures and the example counts (JSON-ready).
        positives: Ids of the positive examples. negatives: Ids of the negative examples.
    """

    name: str
    model: str
    method: str
    weights: np.ndarray = field(repr=False)
    bias: float
    threshold: float
    replaces_vocabulary: bool = False
    report: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    trained_at: str = ""
    positives: tuple[int, ...] = ()
    negatives: tuple[int, ...] = ()

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """The calibrated score (0-1) of each vector."""
        logits = np.asarray(vectors, np.float32) @ self.weights + np.float32(self.bias)
        return 1.0 / (1.0 + np.exp(-np.clip(logits, -60, 60)))

    def summary(self) -> dict[str, Any]:
        """The JSON form (``tags list|show``, the API)."""
        return {
            "name": self.name, "model": self.model, "method": self.method, "threshold": self.threshold,
            "replaces_vocabulary": self.replaces_vocabulary, "positives": list(self.positives),
            "negatives": list(self.negatives), "report": self.report, "created_at": self.created_at,
            "trained_at": self.trained_at,
        }  # fmt: skip


class LearnedTagStore:
    """Reads and writes learned tags; the caller groups writes in ``Store.transaction``.

    Args:
        db: The library's connection (shared with the rest of the store).
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def save(self, tag: LearnedTag) -> None:
        """Store a tag's classifier and its examples (replacing what was stored under its name)."""
        created = self.db.execute(
            "SELECT created_at FROM learned_tags WHERE name = ?", (tag.name,)
        ).fetchone()
        now = now_iso()
        self.db.execute(
            f"INSERT OR REPLACE INTO learned_tags ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (tag.name, tag.model, tag.method, np.asarray(tag.weights, "<f4").tobytes(), float(tag.bias),
             float(tag.threshold), int(tag.replaces_vocabulary), json.dumps(tag.report),
             created[0] if created else now, now),
        )  # fmt: skip
        self.db.execute("DELETE FROM learned_tag_examples WHERE name = ?", (tag.name,))
        self.db.executemany(
            "INSERT INTO learned_tag_examples VALUES (?, ?, ?)",
            [(tag.name, a, 1) for a in tag.positives] + [(tag.name, a, 0) for a in tag.negatives],
        )

    def get(self, name: str) -> LearnedTag | None:
        """The learned tag of this name, in any case (as tag filters match), or None."""
        found = self._read("WHERE name = ?", (name,)) or [
            t for t in self.all() if t.name.lower() == name.lower()
        ]
        return found[0] if found else None

    def all(self) -> list[LearnedTag]:
        """Every learned tag, by name."""
        return self._read("ORDER BY name", ())

    def _read(self, where: str, params: Sequence[Any]) -> list[LearnedTag]:
        out = []
        for row in self.db.execute(f"SELECT {_COLUMNS} FROM learned_tags {where}", params).fetchall():
            name = row[0]
            examples = self.db.execute(
                "SELECT asset_id, positive FROM learned_tag_examples WHERE name = ? ORDER BY asset_id",
                (name,),
            ).fetchall()
            out.append(LearnedTag(
                name, row[1], row[2], np.frombuffer(row[3], "<f4").astype(np.float32), float(row[4]),
                float(row[5]), bool(row[6]), json.loads(row[7]), row[8], row[9],
                tuple(int(a) for a, p in examples if p), tuple(int(a) for a, p in examples if not p),
            ))  # fmt: skip
        return out

    def forget(self, name: str) -> None:
        """Drop a learned tag, its examples and the tags it gave."""
        self.db.execute("DELETE FROM learned_tags WHERE name = ?", (name,))
        self.db.execute("DELETE FROM tags WHERE source = 'learned' AND tag = ?", (name,))

    def replace_tagged(
        self,
        tag: LearnedTag,
        asset_ids: Sequence[int],
        scores: Sequence[float],
        times: Sequence[float | None],
    ) -> None:
        """Make ``asset_ids`` (with their scores and best frames) the assets holding the learned tag."""
        self.db.execute("DELETE FROM tags WHERE source = 'learned' AND tag = ?", (tag.name,))
        self.db.executemany(
            "INSERT INTO tags (asset_id, tag, score, source, model, t) VALUES (?, ?, ?, 'learned', ?, ?)",
            [
                (int(a), tag.name, float(s), tag.model, t)
                for a, s, t in zip(asset_ids, scores, times, strict=True)
            ],
        )

    def copy_tags(self, source: int, target: int) -> None:
        """Give ``target`` (same content: an exact duplicate) the learned tags of ``source``."""
        self.db.execute("DELETE FROM tags WHERE asset_id = ? AND source = 'learned'", (target,))
        self.db.execute(
            "INSERT INTO tags (asset_id, tag, score, source, model, t) "
            "SELECT ?, tag, score, source, model, t FROM tags WHERE asset_id = ? AND source = 'learned'",
            (target, source),
        )

    def drop_replaced_clip_tags(self) -> None:
        """Drop the zero-shot tags that a learned tag of the same name replaces."""
        self.db.execute(
            "DELETE FROM tags WHERE source = 'clip' AND lower(tag) IN "
            "(SELECT lower(name) FROM learned_tags WHERE replaces_vocabulary = 1)"
        )

    def tagged_count(self, name: str) -> int:
        """Assets holding the learned tag."""
        return int(self.db.execute(
            "SELECT count(*) FROM tags WHERE source = 'learned' AND tag = ?", (name,)
        ).fetchone()[0])  # fmt: skip
