"""Tags learned from examples: a small classifier on the stored CLIP vectors, per tag.

A DAM team's own taxonomy ("hero shot", "on-brand background") is no zero-shot vocabulary's: a
few assets marked as examples teach it. :func:`learn` fits an L2-regularised logistic regression
on the asset vectors (a still's vector, a video's mean keyframe): the positives against the
negatives given and a background of other assets drawn at random (presumed negatives, as a
library holds few of any one tag). Classes are weighted to equal mass, the marked negatives
holding up to half of theirs (a few look-alikes marked "not a hero shot" must outweigh 2,000
background assets, or the tag learns the product line, not the look), so the output is a calibrated
probability at an even prior; an asset gets the tag at :data:`THRESHOLD` or above,
scored with that probability (``tag:hero-shot>=0.8`` asks for confident ones). A video is scored
frame by frame and keeps its best frame (as zero-shot tags do).

The fit and its cross-validated report live in :mod:`search.learned_fit`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from assetlens.search.catalog.meta import filter_sql
from assetlens.search.errors import LearnedTagError
from assetlens.search.learned_fit import METHOD, THRESHOLD, TrainingSet, cross_validate, fit_logistic, sigmoid
from assetlens.search.store import Store, Tag
from assetlens.search.store.learned import LearnedTag

MIN_POSITIVES = 3
MAX_NAME = 100
BACKGROUND = 2000
"""Assets drawn at random from the library as presumed negatives."""


def asset_vectors(store: Store, asset_ids: Sequence[int]) -> np.ndarray:
    """One unit vector per asset (a video's mean keyframe), in the order given."""
    found = store.vectors_by_asset(list(asset_ids))
    rows = []
    for a in asset_ids:
        mean = found[a][0].mean(axis=0)
        rows.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
    return np.stack(rows).astype(np.float32) if rows else np.zeros((0, 0), np.float32)


def learned_tags_of(
    tags: Sequence[LearnedTag], vectors: np.ndarray, times: Sequence[float | None]
) -> list[Tag]:
    """An asset's learned tags from its vectors: per tag its best frame, kept at the threshold."""
    out = []
    for tag in tags:
        scores = tag.scores(vectors)
        best = int(np.argmax(scores))
        if scores[best] >= tag.threshold:
            out.append(Tag(tag.name, float(scores[best]), "learned", tag.model, times[best]))
    return out


@dataclass(frozen=True)
class LearnReport:
    """What :func:`learn` did: the tag (with its cross-validated report) and how many assets got it."""

    tag: LearnedTag
    tagged: int

    def as_dict(self) -> dict[str, Any]:
        return {**self.tag.summary(), "tagged": self.tagged}


def learn(
    store: Store,
    name: str,
    positives: Collection[int],
    negatives: Collection[int] = (),
    *,
    vocabulary: Collection[str] = (),
    replace_vocabulary: bool = False,
    update: bool = False,
    seed: int = 0,
) -> LearnReport:
    """Fit (or refit) a learned tag from example assets, store it and tag the whole library.

    Args:
        store: The library (the caller holds its writer lock, if it has one).
        name: The tag.
        positives: Ids of assets that have it. negatives: Ids of assets that do not.
        vocabulary: The library's vocabulary tags: a name among them needs ``replace_vocabulary``.
        replace_vocabulary: Let the learned tag replace the zero-shot tag of that name.
        update: Refit a learned tag of this name (else its name is refused: see :func:`relearn`).
        seed: Draws the background and the folds.

    Raises:
        LearnedTagError: An empty name, fewer than 3 positives, an asset both positive and
            negative, examples without vectors, a library without vectors, or a vocabulary
            name without ``replace_vocabulary``.
    """
    name = _checked_name(name)
    positives, negatives = sorted({int(a) for a in positives}), sorted({int(a) for a in negatives})
    if not update and (known := store.learned.get(name)) is not None:
        # Tag filters ignore case, so `Hero-Shot` and `hero-shot` would be one tag to them.
        raise LearnedTagError(
            f"{known.name!r} is already learned: add examples and refit it with `assetlens tags relearn "
            f"{known.name} --positive ...`, or forget it first"
        )
    require_vectors(store)
    model = str(store.model_id)
    if both := sorted(set(positives) & set(negatives)):
        raise LearnedTagError(
            f"assets given as both positive and negative examples of {name!r}: {_ids(both)}"
        )
    if len(positives) < MIN_POSITIVES:
        raise LearnedTagError(
            f"{name!r} has {len(positives)} positive example(s): at least {MIN_POSITIVES} are needed "
            f"to learn a tag (and to cross-validate it)"
        )
    if name.lower() in {v.lower() for v in vocabulary} and not replace_vocabulary:
        raise LearnedTagError(
            f"{name!r} is a tag of the library's vocabulary: choose another name, or replace the "
            f"zero-shot tag with the learned one (--replace, replace_vocabulary)"
        )
    embedded = set(store.vectors_by_asset([*positives, *negatives]))
    if missing := [a for a in (*positives, *negatives) if a not in embedded]:
        raise LearnedTagError(f"examples without vectors (failed, or sound only): {_ids(missing)}")
    x_pos, x_neg = asset_vectors(store, positives), asset_vectors(store, negatives)
    data = TrainingSet.of(x_pos, x_neg, _background(store, {*positives, *negatives}, seed))
    counts = {"positives": len(positives), "negatives": len(negatives)}
    report = {**counts, "background": int(data.background.sum()), **cross_validate(data, seed=seed)}
    weights, bias = fit_logistic(data.x, data.y, data.weights)
    tag = LearnedTag(name, model, METHOD, weights, bias, THRESHOLD, replace_vocabulary, report,
                     positives=tuple(positives), negatives=tuple(negatives))  # fmt: skip
    with store.transaction():
        store.learned.save(tag)
        tagged = apply(store, [tag])[name]
        if replace_vocabulary:
            store.learned.drop_replaced_clip_tags()
    return LearnReport(store.learned.get(name) or tag, tagged)


def relearn(store: Store, name: str, positives: Collection[int] = (), negatives: Collection[int] = (),
            *, seed: int = 0) -> LearnReport:  # fmt: skip
    """Refit a learned tag from its stored examples plus new ones (an asset may change sides).

    Raises:
        LearnedTagError: No learned tag of this name, or as :func:`learn`.
    """
    tag = stored(store, name)
    new_pos, new_neg = {int(a) for a in positives}, {int(a) for a in negatives}
    if both := sorted(new_pos & new_neg):
        raise LearnedTagError(
            f"assets given as both positive and negative examples of {name!r}: {_ids(both)}"
        )
    keep_pos = (set(tag.positives) - new_neg) | new_pos
    keep_neg = (set(tag.negatives) - new_pos) | new_neg
    return learn(store, tag.name, keep_pos, keep_neg, replace_vocabulary=tag.replaces_vocabulary, update=True,
                 seed=seed)  # fmt: skip


def relearn_all(store: Store, seed: int = 0) -> list[LearnReport]:
    """Refit every learned tag from its stored examples (after the library changed model)."""
    out = []
    for tag in store.learned.all():
        try:
            out.append(relearn(store, tag.name, seed=seed))
        except LearnedTagError:
            # Its examples fell below the minimum (deleted assets): it stays, marked stale, untrained.
            with store.transaction():
                store.learned.save(replace(tag, report={**tag.report, "stale": True}))
                store.db.execute("DELETE FROM tags WHERE source = 'learned' AND tag = ?", (tag.name,))
    return out


def forget(store: Store, name: str) -> LearnedTag:
    """Drop a learned tag, its examples and the tags it gave.

    Raises:
        LearnedTagError: No learned tag of this name.
    """
    tag = stored(store, name)
    with store.transaction():
        store.learned.forget(tag.name)
    return tag


def apply(store: Store, tags: Sequence[LearnedTag], batch: int = 16384) -> dict[str, int]:
    """Tag every stored asset with ``tags`` (their vectors' model only), replacing what they gave before.

    One pass over the vectors for all tags; inside the caller's transaction. Returns the count per tag.
    """
    counts = {t.name: 0 for t in tags}
    live = [t for t in tags if t.model == store.model_id]
    if not live:
        return counts
    weights = np.stack([t.weights for t in live], axis=1)
    bias = np.array([t.bias for t in live], np.float32)
    parts = [
        (ids, owners, sigmoid(vectors @ weights + bias))
        for ids, owners, vectors in store.iter_vector_rows(batch=batch)
    ]
    if not parts:
        return counts
    vector_ids = np.concatenate([p[0] for p in parts])
    owners = np.concatenate([p[1] for p in parts])
    scores = np.concatenate([p[2] for p in parts])
    for j, tag in enumerate(live):
        # Each asset's best frame: sort by asset, then score (best first), take each asset's first.
        order = np.lexsort((-scores[:, j], owners))
        _, first = np.unique(owners[order], return_index=True)
        best = order[first]
        # The examples are what the user said: a positive carries the tag (at its own score, if
        # the model puts it below the threshold), a negative never does.
        said = np.isin(owners[best], tag.positives)
        best = best[((scores[best, j] >= tag.threshold) | said) & ~np.isin(owners[best], tag.negatives)]
        times = {vid: t for vid, (_, t) in store.vector_owners(vector_ids[best].tolist()).items()}
        store.learned.replace_tagged(
            tag,
            owners[best].tolist(),
            scores[best, j].tolist(),
            [times.get(int(v)) for v in vector_ids[best]],
        )
        counts[tag.name] = len(best)
    return counts


def resolve_examples(store: Store, refs: Sequence[int | str], role: str = "example") -> list[int]:
    """Asset ids of examples given as ids, paths of ingested files, or filters (every match).

    A text with a field term (``name:value``, ``<``, ``>``, ``=``) or a JSON object is a filter;
    other text is a path (or an id, when all digits).

    Raises:
        LearnedTagError: Ids, paths or filters that name no ingested asset, all named; a library
            without vectors.
        FilterError: A filter that cannot be parsed.
    """
    require_vectors(store)
    ids: list[int] = []
    unknown: list[str] = []
    for ref in refs:
        if isinstance(ref, int) and not 0 < ref < _MAX_ID:  # no SQLite rowid (nor a printable one)
            unknown.append("id out of range")
            continue
        text = str(ref).strip()
        if isinstance(ref, int) or (text.isascii() and text.isdigit()):
            asset_id = int(text) if len(text) < 20 else _MAX_ID
            found = store.assets([asset_id]).get(asset_id) if 0 < asset_id < _MAX_ID else None
            if found is None or found.status != "ok":
                unknown.append(f"id {_cut(text)}")
            else:
                ids.append(found.id)
        elif os.path.exists(text) or not _FILTER_SIGN.search(text):
            asset = store.asset_by_uri(os.path.abspath(text))
            if asset is None or asset.status != "ok":
                unknown.append(f"path {_cut(text)!r}")
            else:
                ids.append(asset.id)
        else:
            where, params = filter_sql(store, text)
            matched = store.matching_asset_ids(f"({where}) AND a.status = 'ok'", params).tolist()
            if not matched:
                unknown.append(f"filter {_cut(text)!r} (matches no asset)")
            ids.extend(int(a) for a in matched)
    if unknown:
        raise LearnedTagError(f"unknown {role} examples: {'; '.join(unknown)}")
    return list(dict.fromkeys(ids))


def require_vectors(store: Store) -> None:
    """Refuse a library without vectors: there is nothing to learn from.

    Raises:
        LearnedTagError: No vectors yet.
    """
    if store.model_id is None or store.count_vectors() == 0:
        raise LearnedTagError("this library holds no vectors yet: ingest some assets before learning a tag")


_FILTER_SIGN = re.compile(r"[:<>={]")
_MAX_ID = 2**63


def _cut(text: str, most: int = 80) -> str:
    return text if len(text) <= most else f"{text[:most]}... ({len(text)} characters)"


def _background(store: Store, exclude: set[int], seed: int) -> np.ndarray:
    ids = [a for a in store.embedded_asset_ids() if a not in exclude]
    if len(ids) > BACKGROUND:
        ids = sorted(np.random.default_rng(seed).choice(ids, BACKGROUND, replace=False).tolist())
    return asset_vectors(store, ids) if ids else np.zeros((0, 0), np.float32)


def stored(store: Store, name: str) -> LearnedTag:
    tag = store.learned.get(name.strip())
    if tag is None:
        known = ", ".join(t.name for t in store.learned.all()) or "none yet"
        raise LearnedTagError(f"no learned tag {name!r} (learned tags: {known})")
    return tag


def _checked_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise LearnedTagError("a learned tag needs a name")
    if len(name) > MAX_NAME:
        raise LearnedTagError(f"a learned tag's name has at most {MAX_NAME} characters, not {len(name)}")
    if not name.isprintable():
        raise LearnedTagError(f"a learned tag's name cannot hold control characters: {name!r}")
    return name


def _ids(ids: Sequence[int]) -> str:
    shown = ", ".join(str(a) for a in ids[:10])
    return shown + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
