"""The classifier of learned tags (:mod:`search.learned`): a weighted L2 logistic regression on CLIP
vectors, its training set and its cross-validated report.

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

from dataclasses import dataclass
from typing import Any

import numpy as np

THRESHOLD = 0.5
"""An asset gets the tag at this probability or above (the classes weigh the same: an even prior)."""
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
        predicted[test] = sigmoid(data.x[test] @ w + b) >= THRESHOLD
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


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))
