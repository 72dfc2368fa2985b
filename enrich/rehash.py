"""Perceptual hashes for assets stored before AssetLens computed them: their files are read again.

An ingest hashes every image and keyframe as it decodes them (the ``hash`` stage). A library
ingested earlier has vectors but no hashes, so it has no near-duplicates: :func:`fill_hashes`
decodes those files once more (a small copy is all a hash needs: JPEGs decode at their
smallest DCT scale) and stores the hashes, a batch per transaction. Videos get the hashes of
keyframes chosen afresh; comparing two assets matches frames by content, not by time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from assetlens.enrich.decode import DEFAULT_MAX_PIXELS, decode_image
from assetlens.enrich.errors import DecodeError
from assetlens.enrich.phash import THUMB_SIDE, fingerprints, hash_thumbnail
from assetlens.enrich.video import KeyframeOptions, extract_keyframes
from assetlens.search.store import Asset, Store


@dataclass
class HashFill:
    """What :func:`fill_hashes` did: assets hashed, and those whose files could not be read."""

    hashed: int = 0
    unreadable: list[dict[str, object]] = field(default_factory=list)  # {"asset_id", "uri", "reason"}


def hash_file(asset: Asset, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, list[float | None]]:
    """The frame hashes of an asset's file and their times (one frame, t None, for an image).

    Raises:
        DecodeError: The file is gone, unreadable or not what it was.
        OSError: The file cannot be read.
    """
    path = Path(asset.uri)
    if asset.kind == "video":
        _, frames = extract_keyframes(path, KeyframeOptions(min_side=THUMB_SIDE))
        return fingerprints([hash_thumbnail(k.image) for k in frames]), [k.t for k in frames]
    decoded = decode_image(path, min_side=THUMB_SIDE, max_pixels=max_pixels)
    return fingerprints([hash_thumbnail(decoded.image)]), [None]


def fill_hashes(
    store: Store,
    asset_ids: Sequence[int],
    *,
    workers: int = 2,
    batch: int = 64,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: Callable[[int, int], None] | None = None,
) -> HashFill:
    """Hash the files of ``asset_ids`` (images and videos) and store the hashes.

    Args:
        store: The library (the caller holds its writer lock).
        asset_ids: The assets to hash.
        workers: Decoding threads.
        batch: Assets per transaction.
        progress: Called with (assets done, assets in all) after each batch.
    """
    report = HashFill()
    assets = store.assets(list(asset_ids))
    todo = [assets[a] for a in asset_ids if a in assets]

    def one(asset: Asset) -> tuple[Asset, tuple[np.ndarray, list[float | None]] | str]:
        try:
            return asset, hash_file(asset, max_pixels)
        except DecodeError as exc:
            return asset, exc.reason
        except OSError as exc:
            return asset, f"cannot read file ({exc.strerror or exc})"

    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="rehash") as pool:
        for start in range(0, len(todo), batch):
            results = list(pool.map(one, todo[start : start + batch]))
            with store.transaction():
                for asset, outcome in results:
                    if isinstance(outcome, str):
                        report.unreadable.append({"asset_id": asset.id, "uri": asset.uri, "reason": outcome})
                    else:
                        store.duplicates.replace_hashes(asset.id, outcome[0], outcome[1])
                        report.hashed += 1
            if progress is not None:
                progress(min(start + batch, len(todo)), len(todo))
    return report
