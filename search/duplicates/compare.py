"""How close two assets are: CLIP similarity and perceptual-hash distance, frame by frame.

An asset is a set of frames (one for an image, its keyframes for a video), each with a CLIP vector
and the hashes of :mod:`enrich.phash` (rows of (dHash, pHash); row 0 the whole frame, then crops).
Two frames' *distance* is the fewest differing bits (of 128) between the whole of one and any row
of the other, so a crop meets its original at the matching crop row. Two assets compare by the
frames of the one with fewer: for each, its best match in the other (highest cosine, fewest
bits), and the median over them, so two videos must share most of their shots, not one title card.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from assetlens.search.store import Store
from assetlens.search.store.duplicates import Pairs

_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def popcount(x: np.ndarray) -> np.ndarray:
    """Set bits of each uint64 (same shape, int64)."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2
        return np.bitwise_count(x).astype(np.int64)
    x = np.ascontiguousarray(x, dtype=np.uint64)
    return _POPCOUNT8[x.view(np.uint8)].reshape(*x.shape, 8).sum(-1, dtype=np.int64)


def frame_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(Fa, Fb)`` distances between the frames of two assets (hashes ``(F, rows, 2)``)."""
    ab = popcount(a[:, None, None, 0, :] ^ b[None, :, :, :]).sum(-1).min(-1)
    ba = popcount(b[None, :, None, 0, :] ^ a[:, None, :, :]).sum(-1).min(-1)
    return np.minimum(ab, ba)


def measure(
    vectors_a: np.ndarray, hashes_a: np.ndarray, vectors_b: np.ndarray, hashes_b: np.ndarray
) -> tuple[float, int]:
    """(similarity, distance) of two assets: medians, over the frames of the one with fewer, of
    each frame's best cosine and fewest bits to the other's frames."""
    sims = np.asarray(vectors_a, np.float32) @ np.asarray(vectors_b, np.float32).T
    dists = frame_distances(hashes_a, hashes_b)
    axis = 1 if len(vectors_a) <= len(vectors_b) else 0  # reduce over the longer asset's frames
    similarity = float(np.median(sims.max(axis=axis)))
    distance = int(np.ceil(np.median(dists.min(axis=axis))))
    return similarity, distance


@dataclass
class Frames:
    """The frames of some assets, for comparing them: vectors and hashes in asset order.

    Attributes:
        assets: Asset ids (sorted). start: Where each asset's frames begin (``len(assets) + 1``).
        vectors: ``(F, dim)`` unit vectors (float16 or float32). hashes: ``(F, rows, 2)`` uint64.
        kinds: Each asset's kind (``image``, ``video``): only assets of one kind are compared.
    """

    assets: np.ndarray
    start: np.ndarray
    vectors: np.ndarray
    hashes: np.ndarray
    kinds: np.ndarray

    @property
    def owners(self) -> np.ndarray:
        """The asset id of each frame."""
        return np.repeat(self.assets, np.diff(self.start))

    def position(self, asset_ids: np.ndarray) -> np.ndarray:
        """Positions of asset ids in :attr:`assets` (-1: not held)."""
        ids = np.asarray(asset_ids, np.int64)
        if not len(self.assets):
            return np.full(len(ids), -1, np.int64)
        at = np.clip(np.searchsorted(self.assets, ids), 0, len(self.assets) - 1)
        return np.where(self.assets[at] == ids, at, -1)

    @classmethod
    def from_store(cls, store: Store, asset_ids: list[int]) -> Frames:
        """The frames of these assets (those without both vectors and hashes are left out)."""
        vectors = store.vectors_by_asset(asset_ids)
        hashes = store.duplicates.hashes_by_asset(asset_ids)
        assets = store.assets([a for a in asset_ids if a in vectors and a in hashes])
        held = sorted(a for a, asset in assets.items() if asset.status == "ok")
        if not held:
            return cls.empty()
        return cls.build(held, [vectors[a][0] for a in held], [hashes[a] for a in held],
                         [assets[a].kind or "" for a in held])  # fmt: skip

    @classmethod
    def build(
        cls, assets: list[int], vectors: list[np.ndarray], hashes: list[np.ndarray], kinds: list[str]
    ) -> Frames:
        """Frames from per-asset arrays (``assets`` sorted)."""
        # An asset keeps its fewest frames: vectors and hashes of a video may differ in number
        # when they were computed in different runs (hashes filled in later).
        rows = [min(len(v), len(h)) for v, h in zip(vectors, hashes, strict=True)]
        start = np.concatenate([[0], np.cumsum(rows)]).astype(np.int64)
        return cls(
            np.asarray(assets, np.int64), start,
            np.concatenate([v[:n] for v, n in zip(vectors, rows, strict=True)]).astype(np.float16),
            np.concatenate([h[:n] for h, n in zip(hashes, rows, strict=True)]),
            np.asarray(kinds),
        )  # fmt: skip

    @classmethod
    def empty(cls) -> Frames:
        return cls(np.zeros(0, np.int64), np.zeros(1, np.int64), np.zeros((0, 0), np.float16),
                   np.zeros((0, 0, 2), np.uint64), np.zeros(0, str))  # fmt: skip


def verify(frames: Frames, a: np.ndarray, b: np.ndarray, min_similarity: float, max_distance: int) -> Pairs:
    """Measure candidate asset pairs and keep those at least ``min_similarity`` and at most ``max_distance``.

    Args:
        frames: Holds both assets of every pair (pairs with an asset it lacks are dropped).
        a, b: Asset ids of the candidate pairs (any order; repeats are measured once).
    """
    pa, pb = frames.position(np.asarray(a, np.int64)), frames.position(np.asarray(b, np.int64))
    keep = (pa >= 0) & (pb >= 0) & (pa != pb)
    pa, pb = np.minimum(pa[keep], pb[keep]), np.maximum(pa[keep], pb[keep])
    pa, pb = np.unique(np.stack([pa, pb]), axis=1) if len(pa) else (pa, pb)
    same_kind = frames.kinds[pa] == frames.kinds[pb]
    pa, pb = pa[same_kind], pb[same_kind]
    counts = np.diff(frames.start)
    single = (counts[pa] == 1) & (counts[pb] == 1)
    sims = np.zeros(len(pa), np.float64)
    dists = np.zeros(len(pa), np.int64)
    # Stills: one frame each, measured all at once (in slices, to bound memory).
    idx = np.flatnonzero(single)
    for s in range(0, len(idx), 65536):
        part = idx[s : s + 65536]
        fa, fb = frames.start[pa[part]], frames.start[pb[part]]
        va, vb = frames.vectors[fa].astype(np.float32), frames.vectors[fb].astype(np.float32)
        sims[part] = np.einsum("ij,ij->i", va, vb)
        ha, hb = frames.hashes[fa], frames.hashes[fb]
        d1 = popcount(ha[:, None, 0, :] ^ hb).sum(-1).min(-1)
        d2 = popcount(hb[:, None, 0, :] ^ ha).sum(-1).min(-1)
        dists[part] = np.minimum(d1, d2)
    for i in np.flatnonzero(~single):
        ra = slice(frames.start[pa[i]], frames.start[pa[i] + 1])
        rb = slice(frames.start[pb[i]], frames.start[pb[i] + 1])
        sims[i], dists[i] = measure(
            frames.vectors[ra], frames.hashes[ra], frames.vectors[rb], frames.hashes[rb]
        )
    ok = (sims >= min_similarity) & (dists <= max_distance)
    return Pairs(frames.assets[pa[ok]], frames.assets[pb[ok]], sims[ok], dists[ok])
