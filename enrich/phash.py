"""Perceptual hashes of images and video keyframes, for near-duplicate detection.

A frame's *fingerprint* is :data:`ANCHORS` rows of two 64-bit hashes each: a difference hash
(dHash: the signs of 8x8 horizontal brightness steps) and a DCT hash (pHash: the 8x8 lowest DCT
coefficients of a 32x32 copy against their median), of the whole frame (row 0) and of nine
crops keeping 90% of each side (a 3x3 grid of positions: corners, edge middles, centre). Two
frames' distance is the fewest differing bits (of 128) between the whole of one and any row of
the other: a crop of a picture matches the original's row at that crop (``search.duplicates``).

Chosen by measurement (``bench_duplicates.py decision``, BENCHMARKS.md): over the real sample
photos and generated scenes, every variant (half, quarter and 1.5x size, JPEG quality 30,
brightness +-15%, a text watermark, 90% crops) stays within 15 bits of its original while
distinct pictures stay 30 or more apart and other shots of one scene 28. Each 64-bit hash alone
has no such gap (worst variant against closest distinct picture: dHash 7/8, pHash 10/14, block
mean 14/5, Haar wavelet 10/5); without the crop rows a 90% crop is up to 49 bits away.

Everything is computed from a 64x64 greyscale copy of the frame (:func:`hash_thumbnail`, made
while decoding): small enough to travel with a file's work record between processes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

THUMB_SIDE = 64
"""Side of the greyscale copy a fingerprint is computed from (aspect ratio is not kept)."""

CROP = 0.9
_OFFSETS = (0.0, 0.5, 1.0)
ANCHORS: tuple[tuple[float, float, float, float], ...] = (
    (0.0, 0.0, 1.0, 1.0),
    *(
        (x * (1 - CROP), y * (1 - CROP), x * (1 - CROP) + CROP, y * (1 - CROP) + CROP)
        for y in _OFFSETS
        for x in _OFFSETS
    ),
)
"""The regions hashed, as fractions of the frame (x0, y0, x1, y1): the whole, then the 90% crops."""


def _dct_matrix(n: int) -> np.ndarray:
    k, i = np.arange(n)[:, None], np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2 / n)
    m[0] /= np.sqrt(2)
    return m


_DCT32 = _dct_matrix(32)
_BIT_WEIGHTS = (1 << np.arange(63, -1, -1, dtype=np.uint64)).astype(np.uint64)


def hash_thumbnail(image: Image.Image) -> np.ndarray:
    """The ``(64, 64)`` uint8 greyscale copy of a whole frame that :func:`fingerprint` reads."""
    grey = image.convert("L")
    return np.asarray(grey.resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.BOX, reducing_gap=2.0))


def fingerprint(thumbnail: np.ndarray) -> np.ndarray:
    """The hashes of one frame: ``(len(ANCHORS), 2)`` uint64, each row (dHash, pHash) of a region.

    Args:
        thumbnail: A frame's copy from :func:`hash_thumbnail`.
    """
    image = Image.fromarray(np.ascontiguousarray(thumbnail, dtype=np.uint8), mode="L")
    side = image.width
    out = np.zeros((len(ANCHORS), 2), np.uint64)
    for row, (x0, y0, x1, y1) in enumerate(ANCHORS):
        box = (x0 * side, y0 * side, x1 * side, y1 * side)
        steps = np.asarray(image.resize((9, 8), Image.Resampling.BILINEAR, box=box), np.float64)
        out[row, 0] = _pack(steps[:, 1:] > steps[:, :-1])
        square = np.asarray(image.resize((32, 32), Image.Resampling.BILINEAR, box=box), np.float64)
        low = (_DCT32 @ square @ _DCT32.T)[:8, :8].reshape(-1)
        # The DC term (mean brightness) takes no part in the median, so brightness shifts cancel.
        out[row, 1] = _pack(low > np.median(low[1:]))
    return out


def fingerprints(thumbnails: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """Fingerprints of several frames: ``(K, len(ANCHORS), 2)`` uint64."""
    if not len(thumbnails):
        return np.zeros((0, len(ANCHORS), 2), np.uint64)
    return np.stack([fingerprint(t) for t in thumbnails])


def _pack(bits: np.ndarray) -> np.uint64:
    return np.uint64(np.bitwise_or.reduce(_BIT_WEIGHTS[bits.reshape(-1)]))
