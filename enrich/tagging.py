"""Zero-shot tags from image embeddings and a vocabulary.

Each tag is embedded as the mean of its prompt ensemble (category templates applied to the tag
and its synonyms). Those label embeddings are cached once per machine, model and vocabulary
(:func:`models.cache.labels_file`), so a new library tags at once. An image's score for a tag
is the raw cosine similarity between the two.

Threshold rule (multi-label). CLIP cosines are not calibrated: a good match may score 0.30 on
one image and 0.22 on another. So a tag is kept when it stands out from the image's own
distribution over the whole vocabulary: its z-score ``(s - mean) / std`` over all tag scores of
that image must be at least ``min_z`` (default 2.5), and at most ``max_tags`` (default 10) of the
best such tags are kept. Parents of a kept tag are kept too, scored with the best of their own
score and their child's. For a video, each keyframe is tagged this way and the asset keeps, per
tag, the best score and the time where it peaks.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from assetlens.models.cache import labels_file, publish_file
from assetlens.models.clip import ClipEncoder
from assetlens.models.vocab import VocabTerm, Vocabulary
from assetlens.search.errors import ModelMismatchError
from assetlens.search.store import Store, Tag

GENERIC_TEMPLATES = (
    "a photo of {}.",
    "a picture of {}.",
    "an image showing {}.",
    "a close-up photo of {}.",
)
TEMPLATES: dict[str, tuple[str, ...]] = {
    "colours": ("a photo of something {}.", "a {} coloured object.", "the colour {}."),
    "styles": ("a {} image.", "a photo in {} style.", "an image with a {} look."),
    "asset_types": ("a {}.", "an image that is a {}.", "this image is a {}."),
    "settings": ("a {} photo.", "a photo taken {}.", "a picture in a {} setting."),
    "scenes": ("a photo of a {}.", "a picture of a {}.", "a view of a {}."),
    "activities": ("a photo of someone {}.", "a photo of people {}.", "an image of {}."),
}
LABELS_FORMAT = 1  # bump when label embeddings are computed differently (averaging, normalisation)
DEFAULT_MIN_Z = 2.5
DEFAULT_MAX_TAGS = 10

log = logging.getLogger(__name__)


def prompts_for(term: VocabTerm) -> list[str]:
    """The prompt ensemble of one vocabulary term (templates x tag and synonyms)."""
    templates = TEMPLATES.get(term.category, GENERIC_TEMPLATES)
    return [template.format(name) for name in (term.tag, *term.synonyms) for template in templates]


class Tagger:
    """Scores images against a vocabulary and picks their tags.

    Args:
        encoder: The CLIP encoder whose vectors are being tagged.
        vocabulary: Tags to choose from.
        min_z: Minimum z-score of a kept tag (see the module docstring).
        max_tags: Most tags kept per image, before parents are added.
    """

    def __init__(
        self,
        encoder: ClipEncoder,
        vocabulary: Vocabulary,
        *,
        min_z: float = DEFAULT_MIN_Z,
        max_tags: int = DEFAULT_MAX_TAGS,
    ) -> None:
        self.encoder, self.vocabulary = encoder, vocabulary
        self.min_z, self.max_tags = min_z, max_tags
        self.tags = vocabulary.tags()
        self._labels: np.ndarray | None = None
        self._scorer: TagScorer | None = None
        self._ancestors = {tag: vocabulary.ancestors(tag) for tag in self.tags}

    @property
    def cache_file(self) -> Path:
        """Where the label embeddings are cached in the machine cache (:mod:`models.cache`)."""
        recipe = {"format": LABELS_FORMAT, "templates": [GENERIC_TEMPLATES, TEMPLATES]}
        root = self.encoder.settings.cache_dir
        return labels_file(root, self.encoder.model_id, self.vocabulary.digest, recipe)

    def label_embeddings(self) -> np.ndarray:
        """``(T, dim)`` unit vectors, one per tag (computed once per machine, model and vocabulary)."""
        if self._labels is not None:
            return self._labels
        path = self.cache_file
        with contextlib.suppress(OSError, ValueError, EOFError):  # none yet, or damaged: made again
            labels = np.load(path, allow_pickle=False)
            if labels.shape == (len(self.tags), self.encoder.dim) and labels.dtype == np.float32:
                self._labels = labels
                return labels
        self._labels = computed = self._compute_labels()
        try:
            publish_file(path, lambda f: np.save(f, computed, allow_pickle=False))
        except OSError as exc:  # a read-only or full cache costs time, not the run
            log.warning("label embeddings not cached in %s (%s): computed again next run", path, exc)
        return self._labels

    def _compute_labels(self) -> np.ndarray:
        """Each tag's mean prompt embedding, normalised."""
        prompts = [prompts_for(term) for term in self.vocabulary.terms]
        flat = [p for group in prompts for p in group]
        encoded = np.concatenate(
            [self.encoder.encode_texts(flat[i : i + 256], remember=False) for i in range(0, len(flat), 256)]
        )
        ends = np.cumsum([len(group) for group in prompts])
        means = np.stack(
            [
                encoded[end - n : end].mean(axis=0)
                for end, n in zip(ends, (len(g) for g in prompts), strict=True)
            ]
        )
        norms = np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
        return (means / norms).astype(np.float32)

    def scorer(self) -> TagScorer:
        """The label embeddings and the threshold rule, without the encoder (it pickles)."""
        return TagScorer(
            self.encoder.model_id,
            self.tags,
            self.label_embeddings(),
            self._ancestors,
            self.min_z,
            self.max_tags,
        )

    def tag_asset(self, vectors: np.ndarray, times: Sequence[float | None]) -> list[Tag]:
        """Tags of one asset from all its vectors (see :meth:`TagScorer.tag_asset`)."""
        if self._scorer is None:
            self._scorer = self.scorer()
        return self._scorer.tag_asset(vectors, times)


@dataclass(frozen=True)
class TagScorer:
    """Picks an asset's tags from its vectors: label embeddings plus the threshold rule.

    Attributes:
        model_id: The model of the label embeddings (recorded with each tag).
        tags: The vocabulary's tags, in the order of ``labels``' rows.
        labels: ``(T, dim)`` unit vectors, one per tag.
        ancestors: The parents (and their parents) of each tag.
        min_z, max_tags: The threshold rule (see the module docstring).
    """

    model_id: str
    tags: Sequence[str]
    labels: np.ndarray
    ancestors: dict[str, tuple[str, ...]]
    min_z: float = DEFAULT_MIN_Z
    max_tags: int = DEFAULT_MAX_TAGS
    position: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "position", {tag: i for i, tag in enumerate(self.tags)})

    def tag_vectors(self, vectors: np.ndarray) -> list[dict[str, float]]:
        """Kept tags with cosine scores, for each vector."""
        position = self.position
        sims = vectors @ self.labels.T
        out = []
        for row in sims:
            z = (row - row.mean()) / max(float(row.std()), 1e-6)
            order = np.argsort(-row)
            kept: dict[str, float] = {}
            for i in order[: self.max_tags]:
                if z[i] < self.min_z:
                    break
                kept[self.tags[i]] = float(row[i])
            for tag, score in list(kept.items()):
                for parent in self.ancestors[tag]:
                    own = float(row[position[parent]])
                    kept[parent] = max(kept.get(parent, own), own, score)
            out.append(kept)
        return out

    def tag_asset(self, vectors: np.ndarray, times: Sequence[float | None]) -> list[Tag]:
        """Tags of one asset from all its vectors: best score per tag and the time it peaks."""
        best: dict[str, tuple[float, float | None]] = {}
        for kept, t in zip(self.tag_vectors(vectors), times, strict=True):
            for tag, score in kept.items():
                if tag not in best or score > best[tag][0]:
                    best[tag] = (score, t)
        return sorted(
            (Tag(tag, score, "clip", self.model_id, t) for tag, (score, t) in best.items()),
            key=lambda tag: -tag.score,
        )


def retag_library(store: Store, tagger: Tagger, progress: bool = False, batch: int = 512) -> int:
    """Re-tag every embedded asset from its stored vectors; no media file is read.

    Returns:
        The number of assets re-tagged.

    Raises:
        ModelMismatchError: The tagger's model is not the one the store's vectors come from.
    """
    if store.model_id is not None and store.model_id != tagger.encoder.model_id:
        raise ModelMismatchError(
            f"the library's vectors come from {store.model_id}, the tagger runs "
            f"{tagger.encoder.model_id}: tag with the library's model"
        )
    ids = store.embedded_asset_ids()
    scorer = tagger.scorer()
    with tqdm(total=len(ids), unit="asset", disable=not progress) as bar:
        for start in range(0, len(ids), batch):
            chunk = store.vectors_by_asset(ids[start : start + batch])
            tags = {aid: scorer.tag_asset(vectors, times) for aid, (vectors, times) in chunk.items()}
            with store.transaction():
                for aid, asset_tags in tags.items():
                    store.replace_tags(aid, "clip", asset_tags)
            bar.update(len(chunk))
    return len(ids)
