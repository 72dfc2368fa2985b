"""Learned tags on stored vectors built for the purpose: fitting, cross-validation, refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assetlens.search import learned
from assetlens.search.errors import LearnedTagError
from assetlens.search.filters import compile_filter, parse_filter
from assetlens.search.filters.columns import ColumnCache
from assetlens.search.store import Store

DIM = 64


def two_classes(
    store: Store, n: int = 300, seed: int = 0, spread: float = 0.6, share: int = 10
) -> dict[int, int]:
    """``n`` assets whose vectors scatter around one of two directions, one in ``share`` of class 1;
    asset id -> class (0/1)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(2, DIM))
    out = {}
    with store.transaction():
        for i in range(n):
            label = int(i % share == 0)
            v = centres[label] + spread * rng.normal(size=DIM) * np.sqrt(DIM) / 4
            v /= np.linalg.norm(v)
            aid = store.upsert_asset({"uri": f"/lib/{i}.jpg", "kind": "image", "size": 1, "mtime": 0.0,
                                      "status": "ok"})  # fmt: skip
            store.replace_vectors(aid, "model-a", v[None].astype(np.float32), [None])
            out[aid] = label
    return out


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "a.db")


def test_cross_validation_and_tagging_on_two_classes(store: Store) -> None:
    labels = two_classes(store)
    ones = [a for a, c in labels.items() if c == 1]
    zeros = [a for a, c in labels.items() if c == 0]

    report = learned.learn(store, "hero-shot", ones[:8], zeros[:4])

    r = report.tag.report
    assert (r["positives"], r["negatives"], r["folds"]) == (8, 4, 5)
    assert r["background"] == len(labels) - 12
    assert r["precision"] >= 0.85 and r["recall"] >= 0.85, r
    assert 0.04 <= r["background_tagged"] <= 0.15  # a tenth of the background is unmarked class 1
    tagged = {
        a
        for (a,) in store.db.execute(
            "SELECT asset_id FROM tags WHERE source = 'learned' AND tag = 'hero-shot'"
        )
    }
    assert report.tagged == len(tagged)
    precision = len(tagged & set(ones)) / len(tagged)
    recall = len(tagged & set(ones)) / len(ones)
    assert precision >= 0.9 and recall >= 0.9, (precision, recall)
    scores = dict(store.db.execute("SELECT asset_id, score FROM tags WHERE source = 'learned'").fetchall())
    assert min(scores.values()) >= 0.5 and max(scores.values()) <= 1.0
    # Stored with its examples, filterable like any tag (a higher score asks for confident ones).
    again = store.learned.get("hero-shot")
    assert again is not None and again.positives == tuple(sorted(ones[:8])) and again.model == "model-a"
    confident = {a for a, s in scores.items() if s >= 0.8}
    sql, params = compile_filter(parse_filter("tag:hero-shot>=0.8"))
    assert set(store.matching_asset_ids(sql, params).tolist()) == confident


def test_relearn_adds_examples_and_moves_an_asset_between_sides(store: Store) -> None:
    labels = two_classes(store, n=90)
    ones = [a for a, c in labels.items() if c == 1]
    zeros = [a for a, c in labels.items() if c == 0]
    learned.learn(store, "blue", ones[:3], zeros[:2])
    report = learned.relearn(store, "blue", ones[3:6], [ones[0]])  # ones[0] becomes a negative
    tag = report.tag
    assert tag.positives == tuple(sorted(ones[1:6])) and tag.negatives == tuple(sorted([*zeros[:2], ones[0]]))
    with pytest.raises(LearnedTagError, match="already learned"):
        learned.learn(store, "blue", ones[:3])


def test_refusals_name_what_is_wrong(store: Store) -> None:
    with pytest.raises(LearnedTagError, match="no vectors"):
        learned.learn(store, "x", [1, 2, 3])
    labels = two_classes(store, n=30)
    ids = sorted(labels)
    with pytest.raises(LearnedTagError, match="2 positive example"):
        learned.learn(store, "x", ids[:2])
    with pytest.raises(LearnedTagError, match=r"both positive and negative .*: 3"):
        learned.learn(store, "x", ids[:3], [ids[2], ids[5]])
    with pytest.raises(LearnedTagError, match="vocabulary"):
        learned.learn(store, "Shoe", ids[:3], vocabulary=["shoe", "sky"])
    with pytest.raises(
        LearnedTagError, match=r"unknown positive examples: id 999; path '/nowhere/x.jpg'; filter"
    ):
        learned.resolve_examples(store, [ids[0], 999, "/nowhere/x.jpg", "kind:audio"], "positive")
    with pytest.raises(LearnedTagError, match="no learned tag 'nope'"):
        learned.forget(store, "nope")
    for bad, why in [
        ("   ", "needs a name"),
        ("x" * 101, "at most 100"),
        ("hero\nshot", "control characters"),
    ]:
        with pytest.raises(LearnedTagError, match=why):
            learned.learn(store, bad, ids[:3])
    assert learned.resolve_examples(store, ["kind:image", str(ids[0])], "positive") == ids
    assert store.learned.all() == []  # nothing half-stored


def test_names_differing_only_in_case_are_one_tag(store: Store) -> None:
    # Tag filters ignore case: `tag:hero-shot` would find both, so a second one is refused, and
    # every command finds the tag whatever case it is typed in.
    ids = sorted(two_classes(store, n=30))
    learned.learn(store, "Hero-Shot", ids[:3])
    with pytest.raises(LearnedTagError, match="'Hero-Shot' is already learned"):
        learned.learn(store, "hero-shot", ids[:3])
    assert learned.relearn(store, "HERO-SHOT", [ids[3]]).tag.name == "Hero-Shot"
    assert learned.forget(store, "hero-shot").name == "Hero-Shot" and store.learned.all() == []


def test_a_video_is_scored_by_its_best_frame(store: Store, tmp_path: Path) -> None:
    labels = two_classes(store, n=60, share=3)
    ones = [a for a, c in labels.items() if c == 1]
    report = learned.learn(store, "hero", ones[:5])
    vectors, _ = store.vectors_of(ones[6])
    other, _ = store.vectors_of(next(a for a, c in labels.items() if c == 0))
    frames = np.vstack([other, vectors, other])
    [tag] = learned.learned_tags_of([report.tag], frames, [0.0, 4.0, 8.0])
    assert tag.t == 4.0 and tag.source == "learned" and tag.score >= 0.5
    assert learned.learned_tags_of([report.tag], other, [None]) == []


def test_the_column_cache_sees_learned_tags_as_sql_does(store: Store) -> None:
    labels = two_classes(store, n=60, share=3)
    ones = [a for a, c in labels.items() if c == 1]
    cache = ColumnCache(store)
    cache.refresh(force=True)
    learned.learn(store, "hero", ones[:5])
    cache.refresh(force=True)  # the learned tags bumped the change log like any tag
    for f in (parse_filter("tag:hero"), parse_filter("tag:HERO>=0.7"), parse_filter("-tag:hero")):
        sql, params = compile_filter(f)
        expected = set(store.matching_asset_ids(sql, params).tolist())
        assert set(cache.ids.view[cache.evaluate(f)].tolist()) == expected
        assert expected or f == parse_filter("tag:HERO>=0.7")
