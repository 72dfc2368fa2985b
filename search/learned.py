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

Chosen by measurement (``bench_duplicates.py methods``, BENCHMARKS.md): on generated two-class
sets logistic regression's F1 is at least a Platt-calibrated prototype's (the positives' mean
against the negatives') in every case, and far above it with 3-10 positives; it costs under 2 s
(numpy only: Newton's method on 513 weights and ~2,000 rows).

The report is stratified k-fold cross-validation (k = min(5, positives)): precision and recall at
the threshold on the held-out marked examples (precision needs negative examples: without them
it is null), and the share of held-out background assets the tag went to (``background_tagged``:
how widely it spreads; the background may hold unmarked positives, so it is not an error rate).
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
from assetlens.search.store import Store, Tag
from assetlens.search.store.learned import LearnedTag

MIN_POSITIVES = 3
THRESHOLD = 0.5
BACKGROUND = 2000
"""Assets drawn at random from the library as presumed negatives."""
MARKED_SHARE = 0.5
"""Most of the negative class's weight held by the marked negatives (the background holds the
rest): a few marked look-alikes must count against 2,000 background assets. Less when they are
fewer than the positives (one marked asset does not outweigh the library) or the positives fewer
than :data:`FULL_POSITIVES` (they cannot carry a fine distinction yet)."""
FULL_POSITIVES = 10
L2 = 30.0
"""Regularisation: the weights' squared norm costs this much against the classes' mean loss x rows."""
METHOD = "logistic"


def fit_logistic(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray, l2: float = L2
) -> tuple[np.ndarray, float]:
    """Weighted L2 logistic regression by Newton's method.

    Args:
        x: ``(n, dim)`` features. y: 0/1 labels. weights: Per-row weights.
        l2: Penalty on the weights (not the bias).

    Returns:
        ``(weights, bias)``.
    """
    n, dim = x.shape
    # Standardised features (weighted mean and spread of the rows): the penalty then means the
    # same for any model, whose vectors may all lie in a narrow cone.
    total = max(float(weights.sum()), 1e-12)
    mean = (weights[:, None] * x).sum(axis=0) / total
    spread = np.sqrt((weights[:, None] * (x - mean) ** 2).sum(axis=0) / total) + 1e-6
    xb = np.hstack([(x.astype(np.float64) - mean) / spread, np.ones((n, 1))])
    beta = np.zeros(dim + 1)
    penalty = np.full(dim + 1, l2)
    penalty[-1] = 0.0
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(xb @ beta, -60, 60)))
        gradient = xb.T @ (weights * (p - y)) + penalty * beta
        hessian = (xb * (weights * p * (1 - p))[:, None]).T @ xb + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        beta -= step
        if np.abs(step).max() < 1e-6:
            break
    w = beta[:-1] / spread
    return w.astype(np.float32), float(beta[-1] - w @ mean)


@dataclass(frozen=True)
class TrainingSet:
    """Rows to fit on: the examples' vectors, then the background's."""

    x: np.ndarray
    y: np.ndarray
    weights: np.ndarray
    background: np.ndarray  # bool per row: drawn from the library, not marked

    @classmethod
    def of(cls, positives: np.ndarray, negatives: np.ndarray, background: np.ndarray) -> TrainingSet:
        """Rows weighted so both classes weigh the same, the marked negatives holding up to
        :data:`MARKED_SHARE` of their class (all of it without a background)."""
        x = np.vstack([v for v in (positives, negatives, background) if len(v)])
        y = np.concatenate([np.ones(len(positives)), np.zeros(len(negatives) + len(background))])
        mass = float(len(positives))
        share = MARKED_SHARE * min(1.0, len(negatives) / mass) * min(1.0, mass / FULL_POSITIVES)
        share = share if len(background) else 1.0
        w = np.concatenate([
            np.ones(len(positives)),
            np.full(len(negatives), share * mass / max(len(negatives), 1)),
            np.full(len(background), (1 - share) * mass / max(len(background), 1)),
        ])  # fmt: skip
        is_background = np.concatenate(
            [np.zeros(len(positives) + len(negatives), bool), np.ones(len(background), bool)]
        )
        return cls(x, y, w, is_background)


def cross_validate(data: TrainingSet, folds: int = 5, seed: int = 0) -> dict[str, Any]:
    """Stratified k-fold precision and recall at :data:`THRESHOLD` (k = min(folds, positives)) on
    the marked examples, and the share of the background tagged."""
    rng = np.random.default_rng(seed)
    k = int(min(folds, (data.y == 1).sum()))
    fold = np.zeros(len(data.y), np.int64)
    for label in (0, 1):
        rows = rng.permutation(np.flatnonzero(data.y == label))
        fold[rows] = np.arange(len(rows)) % k
    predicted = np.zeros(len(data.y), bool)
    for f in range(k):
        train, test = fold != f, fold == f
        sub = TrainingSet.of(data.x[train & (data.y == 1)], data.x[train & (data.y == 0) & ~data.background],
                             data.x[train & data.background])  # fmt: skip
        w, b = fit_logistic(sub.x, sub.y, sub.weights)
        predicted[test] = _sigmoid(data.x[test] @ w + b) >= THRESHOLD
    # Precision and recall on the marked examples only: the background may hold unmarked positives.
    marked = ~data.background
    truth = data.y == 1
    hits = int((predicted & truth & marked).sum())
    claimed = int((predicted & marked).sum())
    negatives = int((marked & ~truth).sum())
    precision = hits / claimed if negatives and claimed else None
    recall = hits / max(int((truth & marked).sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else None
    spread = float(predicted[data.background].mean()) if data.background.any() else 0.0
    return {
        "folds": k, "precision": _round(precision), "recall": _round(recall), "f1": _round(f1),
        "background_tagged": _round(spread),
    }  # fmt: skip


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))


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
    name = name.strip()
    if not name:
        raise LearnedTagError("a learned tag needs a name")
    positives, negatives = sorted({int(a) for a in positives}), sorted({int(a) for a in negatives})
    if not update and store.learned.get(name) is not None:
        raise LearnedTagError(
            f"{name!r} is already learned: add examples and refit it with `assetlens tags relearn {name} "
            f"--positive ...`, or forget it first"
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
        (ids, owners, _sigmoid(vectors @ weights + bias))
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


def _ids(ids: Sequence[int]) -> str:
    shown = ", ".join(str(a) for a in ids[:10])
    return shown + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
