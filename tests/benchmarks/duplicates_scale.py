"""Scale parts of ``bench_duplicates.py``: grouping 100k-1M assets, and learned tags on 1M.

Synthetic data shaped like a CLIP library: 512-d unit vectors around 2,000 topic directions
(distinct pictures of one topic reach cosines of 0.6-0.85, as real CLIP neighbours do) with
5% of the pictures given 1-3 planted near-duplicates (cosine 0.93-0.99 to their original, their
perceptual hashes 0-14 bits away); every other picture has random hashes. Grouping runs the
library's own code (:func:`search.duplicates.candidates.neighbour_pairs`, ``compare.verify``,
``groups.components``) on arrays in memory; the baseline compares all pairs (a blocked matrix
product: O(n^2)) on a subset and scales by n^2.

Learned tags: a 1M-asset library file (built once under ``--workdir``, vectors from the same
generator, a topic of ~0.5% as the tag) is what :func:`search.learned.learn` fits on and tags.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path
from typing import Any

import numpy as np

from assetlens.enrich.phash import ANCHORS
from assetlens.search import learned, learned_fit
from assetlens.search.duplicates import candidates
from assetlens.search.duplicates.compare import Frames, verify
from assetlens.search.duplicates.groups import PAIR_MAX_DISTANCE, PAIR_MIN_SIMILARITY, components
from assetlens.search.settings import DUPLICATES_MAX_DISTANCE, DUPLICATES_THRESHOLD
from assetlens.search.store import Store
from assetlens.search.store.vectors import encode_vector

DIM, TOPICS = 512, 2000


def vectors_of(n: int, seed: int, topics: int = TOPICS) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 512)`` float16 unit vectors and each one's topic (of ``topics``)."""
    rng = np.random.default_rng(seed)
    common = rng.normal(size=DIM)
    common /= np.linalg.norm(common)
    directions = rng.normal(size=(topics, DIM)).astype(np.float32)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    topic = rng.integers(0, topics, n)
    out = np.empty((n, DIM), np.float16)
    for s in range(0, n, 50_000):
        t = topic[s : s + 50_000]
        noise = rng.normal(size=(len(t), DIM)).astype(np.float32) / np.sqrt(DIM)
        v = 0.55 * common + 0.75 * directions[t] + rng.uniform(0.45, 0.8, (len(t), 1)) * noise
        out[s : s + 50_000] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out, topic


def synthetic(n: int, seed: int = 0) -> tuple[Frames, set[tuple[int, int]]]:
    """``n`` pictures (ids 1..n) with planted near-duplicates; the planted (a, b) pairs."""
    rng = np.random.default_rng(seed + 1)
    vectors, _ = vectors_of(n, seed)
    hashes = rng.integers(0, 2**63, (n, len(ANCHORS), 2), dtype=np.uint64)
    planted: set[tuple[int, int]] = set()
    originals = rng.choice(n, int(0.05 * n), replace=False)
    used = np.zeros(n, bool)
    used[originals] = True
    free = iter(np.flatnonzero(~used))
    for o in originals:
        for _ in range(int(rng.integers(1, 4))):
            c = next(free, None)
            if c is None:
                break
            noise = rng.normal(size=DIM).astype(np.float32) / np.sqrt(DIM)
            v = vectors[o].astype(np.float32) + rng.uniform(0.1, 0.35) * noise
            vectors[c] = v / np.linalg.norm(v)
            flips = np.zeros((len(ANCHORS), 2), np.uint64)
            for _ in range(int(rng.integers(0, 15))):  # bits flipped in every row: an edited copy
                bit = int(rng.integers(0, 128))
                flips[:, bit // 64] ^= np.uint64(1 << (bit % 64))
            hashes[c] = hashes[o] ^ flips
            planted.add((int(min(o, c)) + 1, int(max(o, c)) + 1))
    frames = Frames(np.arange(1, n + 1, dtype=np.int64), np.arange(n + 1, dtype=np.int64), vectors, hashes,
                    np.full(n, "image"))  # fmt: skip
    return frames, planted


def group(frames: Frames, *, force_ann: bool = False, nprobe: int | None = None) -> dict[str, Any]:
    """Candidates, verification and grouping, timed, on the library's code."""
    saved = candidates.EXACT_MAX, candidates.NPROBE
    if force_ann:
        candidates.EXACT_MAX = 0
    if nprobe is not None:
        candidates.NPROBE = nprobe
    try:
        t0 = time.perf_counter()
        a, b = candidates.neighbour_pairs(frames.vectors, frames.owners, PAIR_MIN_SIMILARITY)
        t1 = time.perf_counter()
        kept = verify(frames, a, b, PAIR_MIN_SIMILARITY, PAIR_MAX_DISTANCE)
        t2 = time.perf_counter()
        decided = (kept.similarity >= DUPLICATES_THRESHOLD) & (kept.distance <= DUPLICATES_MAX_DISTANCE)
        roots = components(kept.a[decided], kept.b[decided])
        t3 = time.perf_counter()
    finally:
        candidates.EXACT_MAX, candidates.NPROBE = saved
    return {"candidates_s": round(t1 - t0, 2), "verify_s": round(t2 - t1, 2), "group_s": round(t3 - t2, 2),
            "seconds": round(t3 - t0, 2), "candidate_pairs": len(a), "kept_pairs": len(kept),
            "roots": roots}  # fmt: skip


def brute_force(frames: Frames) -> dict[str, Any]:
    """Every pair compared (blocked matrix products), then the same verification and grouping."""
    t0 = time.perf_counter()
    v = frames.vectors.astype(np.float32)
    found_a, found_b = [], []
    for s in range(0, len(v), 4096):
        sims = v[s : s + 4096] @ v.T
        qi, hj = np.nonzero(sims >= PAIR_MIN_SIMILARITY)
        keep = hj > qi + s
        found_a.append(frames.assets[qi[keep] + s])
        found_b.append(frames.assets[hj[keep]])
    a, b = np.concatenate(found_a), np.concatenate(found_b)
    kept = verify(frames, a, b, PAIR_MIN_SIMILARITY, PAIR_MAX_DISTANCE)
    decided = (kept.similarity >= DUPLICATES_THRESHOLD) & (kept.distance <= DUPLICATES_MAX_DISTANCE)
    roots = components(kept.a[decided], kept.b[decided])
    return {"seconds": round(time.perf_counter() - t0, 2), "candidate_pairs": len(a), "roots": roots}


def quality(roots: dict[int, int], planted: set[tuple[int, int]]) -> dict[str, float]:
    """Recall of the planted pairs, and the share of grouped pairs that are planted relations."""
    found = sum(1 for a, b in planted if a in roots and roots.get(a) == roots.get(b))
    members: dict[int, list[int]] = {}
    for node, root in roots.items():
        members.setdefault(root, []).append(node)
    truth_groups = components(np.array([a for a, _ in planted]), np.array([b for _, b in planted]))
    together = sum(len(g) * (len(g) - 1) // 2 for g in members.values())
    right = sum(
        1
        for g in members.values()
        for i, x in enumerate(g)
        for y in g[i + 1 :]
        if truth_groups.get(x) == truth_groups.get(y)
    )
    return {"recall": round(found / max(len(planted), 1), 4), "precision": round(right / max(together, 1), 4)}


def grouping(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": []}
    sub, planted_sub = synthetic(args.baseline, seed=9)
    base = brute_force(sub)
    ours = group(sub, force_ann=False)
    out["baseline"] = {"n": args.baseline, "brute_force_s": base["seconds"], "ours_s": ours["seconds"],
                       "brute_force_quality": quality(base["roots"], planted_sub),
                       "ours_quality": quality(ours["roots"], planted_sub)}  # fmt: skip
    for n in args.sizes:
        frames, planted = synthetic(n)
        for nprobe in args.nprobe or [None]:
            run = group(frames, force_ann=n > candidates.EXACT_MAX, nprobe=nprobe)
            q = quality(run.pop("roots"), planted)
            brute_estimate = base["seconds"] * (n / args.baseline) ** 2
            out["runs"].append({"n": n, "nprobe": nprobe or candidates.NPROBE, **run, **q,
                                "planted": len(planted),
                                "brute_force_estimate_s": round(brute_estimate, 1),
                                "speedup": round(brute_estimate / run["seconds"], 1)})  # fmt: skip
        del frames
    return out


# --- learned tags at scale ------------------------------------------------------------------


def library(path: Path, n: int) -> tuple[Store, np.ndarray]:
    """A library of ``n`` image assets with synthetic vectors (built once), and each one's topic."""
    vectors, topic = vectors_of(n, seed=3)
    fresh = not path.exists()
    store = Store(path)
    if fresh or store.count_vectors() != n:
        with store.transaction():
            store.set_state("model", "synthetic-512")
            store.db.executemany(
                "INSERT INTO assets (id, uri, kind, size, mtime, ingested_at, status) "
                "VALUES (?, ?, 'image', 1, 0, '2024-01-01T00:00:00Z', 'ok')",
                ((i + 1, f"/lib/{i}.jpg") for i in range(n)),
            )
            store.db.executemany(
                "INSERT INTO vectors (id, asset_id, t, model, vector) "
                "VALUES (?, ?, NULL, 'synthetic-512', ?)",
                ((i + 1, i + 1, encode_vector(vectors[i])) for i in range(n)),
            )
    return store, topic


def learned_tags(args: argparse.Namespace) -> dict[str, Any]:
    args.workdir.mkdir(parents=True, exist_ok=True)
    built = time.perf_counter()
    store, topic = library(args.workdir / f"learned-{args.size}.db", args.size)
    build_s = time.perf_counter() - built
    counts = np.bincount(topic, minlength=TOPICS)
    chosen = int(np.argsort(counts)[len(counts) // 2])  # a topic of median size (~0.05%)
    members = np.flatnonzero(topic == chosen) + 1
    others = np.flatnonzero(topic != chosen) + 1
    rng = np.random.default_rng(0)
    positives, negatives = members[:10].tolist(), rng.choice(others, 10, replace=False).tolist()
    with store.transaction():
        store.learned.forget("bench")
    t0 = time.perf_counter()  # baseline: one read of every vector, as applying a tag needs
    read = sum(len(ids) for ids, _, _ in store.iter_vector_rows(batch=16384))
    scan_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = learned.learn(store, "bench", positives, negatives, update=True)
    total = time.perf_counter() - t0
    t1 = time.perf_counter()
    with store.transaction():
        counts_applied = learned.apply(store, [report.tag])
    apply_s = time.perf_counter() - t1
    tagged = {
        a for (a,) in store.db.execute("SELECT asset_id FROM tags WHERE source = 'learned' AND tag = 'bench'")
    }
    truth = set(members.tolist())
    out = {"n": args.size, "library_build_s": round(build_s, 1), "read_vectors_s": round(scan_s, 2),
           "vectors_read": read, "apply_x_read": round(apply_s / scan_s, 2), "learn_s": round(total, 2),
           "fit_and_cross_validate_s": round(total - apply_s, 2), "apply_s": round(apply_s, 2),
           "tagged": counts_applied["bench"], "topic_size": len(truth),
           "precision": round(len(tagged & truth) / max(len(tagged), 1), 4),
           "recall": round(len(tagged & truth) / len(truth), 4), "report": report.tag.report}  # fmt: skip
    store.close()
    return out


# --- learned tags: which classifier (measured on generated two-class sets) -----------------


def two_class(n: int, hard: bool, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A library of ``n`` vectors, whether each has the tag, and the hard negatives' rows.

    Easy: the tag is one topic (a product line). Hard: the tag is a look within one topic (a hero
    shot among the product line's pictures): both halves of the topic share everything but a
    small style direction, and the other half's pictures are the negatives a user would mark.
    """
    rng = np.random.default_rng(seed)
    vectors, topic = vectors_of(n, seed, topics=100)  # a topic holds ~1% of the library
    chosen = int(np.argmax(np.bincount(topic)))
    members = np.flatnonzero(topic == chosen)
    if not hard:
        truth = topic == chosen
        return vectors, truth, np.flatnonzero(~truth)
    style = rng.normal(size=DIM)
    style /= np.linalg.norm(style)
    look = rng.random(len(members)) < 0.5
    v = vectors[members].astype(np.float32) + np.where(look, 0.12, -0.12)[:, None] * style
    vectors[members] = v / np.linalg.norm(v, axis=1, keepdims=True)
    truth = np.zeros(n, bool)
    truth[members[look]] = True
    return vectors, truth, members[~look]


def fit_prototype(data: learned_fit.TrainingSet) -> tuple[np.ndarray, float]:
    """The alternative: positives' mean minus negatives' mean, Platt-calibrated on the training rows."""
    positive = data.x[data.y == 1].mean(axis=0)
    negative = np.average(data.x[data.y == 0], axis=0, weights=data.weights[data.y == 0])
    direction = (positive - negative).astype(np.float32)
    slope, bias = learned_fit.fit_logistic((data.x @ direction)[:, None], data.y, data.weights, l2=0.0)
    return direction * slope[0], bias


def compare_methods(args: argparse.Namespace) -> dict[str, Any]:
    """Precision, recall and F1 on the whole generated library (its truth known), per method,
    positives given and negatives given, mean over seeds."""
    out: list[dict[str, Any]] = []
    methods = {
        "logistic": lambda d: learned_fit.fit_logistic(d.x, d.y, d.weights),
        "prototype": fit_prototype,
        "logistic, marked negatives weighed as background": lambda d: learned_fit.fit_logistic(
            d.x, d.y, as_background(d)
        ),
    }
    for hard, positives, negatives in itertools.product((False, True), (3, 5, 10, 30), (0, 10, 30)):
        scores: dict[str, list[tuple[float, float, float, float]]] = {m: [] for m in methods}
        for seed in range(args.seeds):
            vectors, truth, hard_negatives = two_class(args.set_size, hard, seed)
            rng = np.random.default_rng(seed + 100)
            pos = rng.choice(np.flatnonzero(truth), positives, replace=False)
            neg = rng.choice(hard_negatives, negatives, replace=False) if negatives else np.zeros(0, np.int64)
            rest = np.setdiff1d(np.arange(len(vectors)), np.concatenate([pos, neg]))
            background = rng.choice(rest, learned.BACKGROUND, replace=False)
            x = vectors.astype(np.float32)
            data = learned_fit.TrainingSet.of(x[pos], x[neg], x[background])
            for name, fit in methods.items():
                t0 = time.perf_counter()
                w, b = fit(data)
                fit_s = time.perf_counter() - t0
                tagged = learned_fit.sigmoid(x[rest] @ w + b) >= learned_fit.THRESHOLD
                hits = int((tagged & truth[rest]).sum())
                p, r = hits / max(int(tagged.sum()), 1), hits / max(int(truth[rest].sum()), 1)
                scores[name].append((p, r, 2 * p * r / (p + r) if p + r else 0.0, fit_s))
        for name, rows in scores.items():
            p, r, f1, fit_s = np.mean(rows, axis=0)
            out.append({"set": "hard" if hard else "easy", "positives": positives, "negatives": negatives,
                        "method": name, "precision": round(p, 3), "recall": round(r, 3), "f1": round(f1, 3),
                        "fit_ms": round(fit_s * 1000, 1)})  # fmt: skip
    wins = {m: sum(1 for row in out if row["method"] == m and row["f1"] >= _best(out, row)) for m in methods}
    return {"set_size": args.set_size, "seeds": args.seeds, "rows": out, "f1_best_or_tied": wins}


def as_background(data: learned_fit.TrainingSet) -> np.ndarray:
    """The earlier weighting: a marked negative weighs as 4 background assets (so 10 marked ones
    hold ~2% of the negative class)."""
    raw = np.where(data.y == 1, 1.0, np.where(data.background, 0.25, 1.0))
    raw[data.y == 0] *= (data.y == 1).sum() / raw[data.y == 0].sum()
    return raw


def _best(rows: list[dict[str, Any]], row: dict[str, Any]) -> float:
    key = ("set", "positives", "negatives")
    return max(r["f1"] for r in rows if all(r[k] == row[k] for k in key))
