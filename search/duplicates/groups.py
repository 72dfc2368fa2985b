"""Near-duplicate groups: compare new frames with the library, keep the close pairs, group them.

The decision: two assets (of one kind) are near-duplicates when their CLIP similarity is at least
``threshold`` AND their perceptual hashes are at most ``max_distance`` bits apart (both measured
by :func:`search.duplicates.compare.measure`). Either alone merges too much: CLIP calls two shots
of one scene alike, and hashes call any two packshots on white alike.

Pairs are kept down to :data:`PAIR_MIN_SIMILARITY` and up to :data:`PAIR_MAX_DISTANCE`, looser than
any threshold in use, so listing groups at another threshold reads the kept pairs and compares
nothing. Groups are the connected components of the pairs at the library's thresholds; each is
led by its *representative*: the largest picture (width x height), then the oldest (capture
date), then the first ingested. They are stored (``near_duplicates``) for filters and for
collapsing search results, and brought level after every ingest (:meth:`NearDuplicates.update`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from assetlens.search.duplicates.candidates import index_pairs, neighbour_pairs
from assetlens.search.duplicates.compare import Frames, measure, verify
from assetlens.search.errors import QueryError
from assetlens.search.settings import DUPLICATES_MAX_DISTANCE, DUPLICATES_THRESHOLD
from assetlens.search.store import Asset, Store
from assetlens.search.vectors.index import VectorIndex

PAIR_MIN_SIMILARITY = 0.80
"""Least CLIP similarity of a kept pair (the lowest ``threshold`` a listing may ask for)."""
PAIR_MAX_DISTANCE = 40
"""Most differing hash bits (of 128) of a kept pair (the highest ``max_distance`` a listing may ask for)."""
INCREMENTAL_MAX = 2000
"""New assets compared through the library's index; more are compared through a temporary one."""


@dataclass(frozen=True)
class Member:
    """One asset of a group, measured against the group's representative."""

    asset_id: int
    uri: str
    similarity: float
    distance: int
    width: int | None
    height: int | None
    created: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"asset_id": self.asset_id, "uri": self.uri, "similarity": round(self.similarity, 4),
                "distance": self.distance, "width": self.width, "height": self.height,
                "created": self.created}  # fmt: skip


@dataclass(frozen=True)
class Group:
    """A near-duplicate group: its representative first among ``members``."""

    members: tuple[Member, ...]

    @property
    def representative(self) -> Member:
        return self.members[0]

    def as_dict(self) -> dict[str, Any]:
        """``{"representative": ID, "size", "assets": [{"asset_id", "uri", "similarity", ...}]}``."""
        return {"representative": self.representative.asset_id, "size": len(self.members),
                "assets": [m.as_dict() for m in self.members]}  # fmt: skip


@dataclass(frozen=True)
class DuplicateUpdate:
    """What :meth:`NearDuplicates.update` did.

    Attributes:
        compared: Assets compared with the library. pairs: Close pairs found among them.
        changed: Group memberships written (added, moved or removed).
    """

    compared: int
    pairs: int
    changed: int


def components(a: np.ndarray, b: np.ndarray) -> dict[int, int]:
    """The connected components of a graph given by its edges: each node -> its smallest node."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(x, x) != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    for x, y in zip(a.tolist(), b.tolist(), strict=True):
        rx, ry = find(x), find(y)
        if rx != ry:
            parent[max(rx, ry)] = min(rx, ry)
    return {x: find(x) for x in {*a.tolist(), *b.tolist()}}


def representative_key(asset: Asset) -> tuple[int, str, int]:
    """Sort key of a group's members: largest picture, then oldest capture, then first ingested."""
    pixels = (asset.width or 0) * (asset.height or 0)
    return (-pixels, asset.created or "\uffff", asset.id)


class NearDuplicates:
    """The near-duplicate groups of one library.

    Args:
        store: The library.
        threshold: Least CLIP similarity of near-duplicates (the library's setting).
        max_distance: Most differing hash bits of near-duplicates (the library's setting).
    """

    def __init__(
        self,
        store: Store,
        threshold: float = DUPLICATES_THRESHOLD,
        max_distance: int = DUPLICATES_MAX_DISTANCE,
    ) -> None:
        _check(threshold, max_distance)
        self.store, self.threshold, self.max_distance = store, threshold, max_distance

    def update(
        self, index: VectorIndex | None = None, progress: Callable[[str], None] | None = None
    ) -> DuplicateUpdate:
        """Compare the assets hashed since the last update with the library, then regroup.

        Args:
            index: The library's vector index, synced with the store; a few new assets are
                compared through it. Without it (or with many), a temporary index over every
                frame is built.
            progress: Told what step runs.
        """
        store = self.store
        ids, top = store.duplicates.unchecked()
        found = 0
        if ids:
            if progress is not None:
                progress(f"comparing {len(ids)} assets with the library")
            pairs = self._compare(ids, index)
            found = len(pairs)
            with store.transaction():
                store.duplicates.replace_pairs_of(ids, pairs)
                store.duplicates.mark_checked(top)
        with store.transaction():
            changed = self.regroup()
        return DuplicateUpdate(len(ids), found, changed)

    def rebuild(self, progress: Callable[[str], None] | None = None) -> DuplicateUpdate:
        """Forget every pair and compare the whole library again."""
        with self.store.transaction():
            self.store.duplicates.clear_pairs()
        return self.update(None, progress)

    def _compare(self, ids: list[int], index: VectorIndex | None) -> Any:
        store = self.store
        if index is not None and len(ids) <= INCREMENTAL_MAX:
            a, b = index_pairs(store, index, ids, PAIR_MIN_SIMILARITY)
            frames = Frames.from_store(store, sorted({*ids, *a.tolist(), *b.tolist()}))
        else:
            frames = Frames.from_store(store, store.duplicates.hashed_assets())
            asking = np.flatnonzero(np.isin(frames.owners, np.asarray(ids, np.int64)))
            a, b = neighbour_pairs(frames.vectors, frames.owners, PAIR_MIN_SIMILARITY, queries=asking)
        return verify(frames, a, b, PAIR_MIN_SIMILARITY, PAIR_MAX_DISTANCE)

    def regroup(self) -> int:
        """Store the groups at the library's thresholds (inside the caller's transaction); returns
        the memberships written."""
        return self.store.duplicates.set_groups(self.membership(self.threshold, self.max_distance))

    def membership(
        self, threshold: float, max_distance: int, allowed: Collection[int] | None = None
    ) -> dict[int, int]:
        """Asset -> representative id of every asset in a group at these thresholds.

        Args:
            allowed: Only these assets take part (pairs with another asset are left out).
        """
        pairs = self.store.duplicates.pairs(threshold, max_distance)
        a, b = pairs.a, pairs.b
        if allowed is not None:
            inside = np.fromiter(allowed, np.int64, len(allowed))
            keep = np.isin(a, inside) & np.isin(b, inside)
            a, b = a[keep], b[keep]
        roots = components(a, b)
        assets = self.store.assets(list(roots))
        members: dict[int, list[Asset]] = {}
        for asset_id, root in roots.items():
            asset = assets.get(asset_id)
            if asset is not None and asset.status == "ok":
                members.setdefault(root, []).append(asset)
        out: dict[int, int] = {}
        for group in members.values():
            if len(group) >= 2:
                lead = min(group, key=representative_key).id
                out.update((m.id, lead) for m in group)
        return out

    def groups(
        self,
        threshold: float | None = None,
        max_distance: int | None = None,
        allowed: Collection[int] | None = None,
    ) -> list[Group]:
        """The groups, largest first, each member measured against its representative.

        Args:
            threshold: Least CLIP similarity (default: the library's).
            max_distance: Most differing hash bits (default: the library's).
            allowed: Only these assets take part (a filter's result).

        Raises:
            QueryError: A threshold looser than the pairs kept (:data:`PAIR_MIN_SIMILARITY`,
                :data:`PAIR_MAX_DISTANCE`).
        """
        threshold = self.threshold if threshold is None else threshold
        max_distance = self.max_distance if max_distance is None else max_distance
        _check(threshold, max_distance)
        membership = self.membership(threshold, max_distance, allowed)
        by_group: dict[int, list[int]] = {}
        for asset_id, lead in membership.items():
            by_group.setdefault(lead, []).append(asset_id)
        assets = self.store.assets(list(membership))
        frames = Frames.from_store(self.store, sorted(membership))
        out = []
        for lead, ids in by_group.items():
            ordered = sorted((assets[i] for i in ids), key=representative_key)
            out.append(Group(tuple(self._member(frames, assets[lead], a) for a in ordered)))
        return sorted(out, key=lambda g: (-len(g.members), g.representative.asset_id))

    def _member(self, frames: Frames, lead: Asset, asset: Asset) -> Member:
        similarity, distance = 1.0, 0
        if asset.id != lead.id:
            at = frames.position(np.array([lead.id, asset.id]))
            if (at >= 0).all():
                ra, rb = (slice(frames.start[i], frames.start[i + 1]) for i in at)
                similarity, distance = measure(frames.vectors[ra], frames.hashes[ra],
                                               frames.vectors[rb], frames.hashes[rb])  # fmt: skip
        return Member(asset.id, asset.uri, similarity, distance, asset.width, asset.height, asset.created)

    def collapse_keys(self, asset_ids: Sequence[int]) -> dict[int, int]:
        """The stored group of each grouped asset among ``asset_ids`` (for collapsing results)."""
        return self.store.duplicates.group_of(asset_ids)


def _check(threshold: float, max_distance: int) -> None:
    if not PAIR_MIN_SIMILARITY <= threshold <= 1.0:
        raise QueryError(
            f"threshold {threshold} is outside {PAIR_MIN_SIMILARITY}-1.0 (pairs are kept down to "
            f"a CLIP similarity of {PAIR_MIN_SIMILARITY})"
        )
    if not 0 <= max_distance <= PAIR_MAX_DISTANCE:
        raise QueryError(
            f"max distance {max_distance} is outside 0-{PAIR_MAX_DISTANCE} (pairs are kept up to "
            f"{PAIR_MAX_DISTANCE} differing hash bits of 128)"
        )
