"""Near-duplicates: the same shot at other sizes, cropped, recompressed, brightened or watermarked.

- ``compare``: how close two assets are (CLIP similarity and perceptual-hash distance, per frame);
- ``candidates``: which pairs to compare (CLIP neighbours from a FAISS index, never all pairs);
- ``groups``: the decision, the kept pairs, the groups and their representatives
  (:class:`NearDuplicates`).

The hashes are computed while ingesting (``enrich.phash``, the ``hash`` stage) and stored per
image and keyframe (``Store.duplicates``).
"""

from assetlens.search.duplicates.groups import (
    PAIR_MAX_DISTANCE,
    PAIR_MIN_SIMILARITY,
    DuplicateUpdate,
    Group,
    Member,
    NearDuplicates,
)

__all__ = ["PAIR_MAX_DISTANCE", "PAIR_MIN_SIMILARITY", "DuplicateUpdate", "Group", "Member", "NearDuplicates"]
