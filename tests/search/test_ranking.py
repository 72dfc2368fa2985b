"""Ranking: lexical relevance, the hybrid fusion of calibrated relevances, and its evaluation.

The mixed library (``ranking_eval``) is real: photos ingested with the tiny CLIP (random weights,
so its visual ranking is noise) and voice memos spoken by espeak-ng, transcribed by the real
Whisper tiny.en through the ingest pipeline.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import open_library
from ranking_eval import METHODS, PHOTOS_TEXT, QUERIES, build_library, evaluate, names_by_id, table

from assetlens.models.settings import WhisperSettings
from assetlens.models.whisper import Transcriber
from assetlens.search.filters import parse_filter
from assetlens.search.library import LibraryCore
from assetlens.search.query import SearchEngine
from assetlens.search.query_types import Query, Result
from assetlens.search.ranking import LEXICAL_LEVELS, LexicalQuery, fuse, lexical_relevance
from assetlens.search.store import Tag

pytestmark = pytest.mark.slow
TINY = "assetlens-tiny@random"


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    t = Transcriber(WhisperSettings(whisper_device="cpu"))
    t.load()
    return t


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory, transcriber: Transcriber) -> Iterator[LibraryCore]:
    """The evaluation's library; tests only read it."""
    lib = build_library(tmp_path_factory.mktemp("mixed"), transcriber)
    yield lib
    lib.close()


def _search(lib: LibraryCore, text: str, **options: object) -> list[Result]:
    return lib.engine.search(Query(text=((text, 1.0),), **options)).results  # type: ignore[arg-type]


def test_hybrid_beats_rrf_and_every_single_list(
    mixed: LibraryCore, capsys: pytest.CaptureFixture[str]
) -> None:
    scores = evaluate(mixed)
    with capsys.disabled():
        print(f"\nnDCG@10 over {len(QUERIES)} labelled queries:\n{table(scores)}")
    mean = scores["mean"]
    assert mean["hybrid"] > mean["RRF"] + 0.05
    assert mean["hybrid"] >= max(mean[m] for m in METHODS if m not in ("hybrid", "RRF"))
    # Query by query, fusing never loses what the word match found.
    assert all(scores[q]["hybrid"] >= scores[q]["lexical"] - 1e-9 for q in QUERIES)


def test_a_memo_spoken_word_for_word_ranks_first_among_photos(
    tmp_path: Path, transcriber: Transcriber
) -> None:
    """The issue's library: 14 photos and one voice memo that says the query word for word."""
    said = "The new product video for the winter jacket goes live on Monday."
    lib = build_library(tmp_path, transcriber, {"memo.wav": said})
    try:
        memo = lib.store.asset_by_uri(str(tmp_path / "media" / "memo.wav"))
        assert memo is not None
        query = "winter jacket goes live on Monday"
        transcript = " ".join(s["text"] for s in lib.store.segments_of(memo.id)).lower()
        assert query.lower() in transcript.replace(",", ""), f"Whisper heard: {transcript}"

        hybrid = _search(lib, query)
        semantic = _search(lib, query, mode="semantic")

        first = hybrid[0]
        assert first.asset_id == memo.id and first.match == "text"
        assert first.relevance is not None and first.relevance >= 0.9
        assert first.explanation["words"]["match"] == "phrase"
        assert first.segment is not None and "winter jacket" in first.segment["text"].lower()
        # The photo CLIP likes best does not stand out: it weighs little and stays below the memo.
        best_photo = semantic[0]
        assert best_photo.relevance is not None and best_photo.relevance < 0.5
        fused = next(r for r in hybrid if r.asset_id == best_photo.asset_id)
        assert hybrid.index(fused) > 0 and fused.relevance == pytest.approx(best_photo.relevance, abs=1e-4)
        assert len(hybrid) == len(PHOTOS_TEXT) + 1
    finally:
        lib.close()


@pytest.mark.parametrize("mode", ["semantic", "lexical", "hybrid"])
def test_every_result_carries_a_relevance_in_every_mode(mixed: LibraryCore, mode: str) -> None:
    engine = mixed.engine
    cat = next(i for i, name in names_by_id(mixed).items() if name == "pet-food-cat-portrait.jpg")
    queries = [
        Query(text=(("coffee menu", 1.0),), mode=mode, limit=50),  # type: ignore[arg-type]
        Query(text=(("space week", 1.0),), mode=mode, filter=parse_filter("kind:image"), limit=50),  # type: ignore[arg-type]
    ]
    if mode != "lexical":
        queries.append(Query(asset_id=cat, text=(("team", 1.0),), mode=mode, limit=50))  # type: ignore[arg-type]
    for query in queries:
        results = engine.search(query).results
        assert results
        assert all(r.relevance is not None and 0.0 <= r.relevance <= 1.0 for r in results), query
        relevance = [r.relevance for r in results]
        if mode != "lexical":  # lexical order is level then BM25, the same order as its relevance
            assert relevance == sorted(relevance, reverse=True)


def test_hybrid_pages_are_complete_and_keep_their_relevance(mixed: LibraryCore) -> None:
    whole = _search(mixed, "coffee menu", limit=50)
    seen: list[Result] = []
    cursor = None
    while True:
        page = mixed.engine.search(Query(text=(("coffee menu", 1.0),), limit=4, cursor=cursor))
        seen += page.results
        cursor = page.next_cursor
        if cursor is None:
            break
    assert [r.asset_id for r in seen] == [r.asset_id for r in whole]
    assert [r.relevance for r in seen] == [r.relevance for r in whole]


def test_min_relevance_cuts_hybrid_results_like_any_other(mixed: LibraryCore) -> None:
    names = names_by_id(mixed)
    kept = _search(mixed, "coffee menu", min_relevance=0.5)
    words = _search(mixed, "coffee menu", mode="lexical", min_relevance=0.5)
    seen = _search(mixed, "coffee menu", mode="semantic", min_relevance=0.5)
    # Random CLIP: no picture stands out, so only word matches pass the cut, in their own order.
    assert seen == []
    assert [names[r.asset_id] for r in kept] == [names[r.asset_id] for r in words]
    assert [names[r.asset_id] for r in kept][:2] == ["cafe-coffee-menu.jpg", "memo-02.wav"]
    assert all(r.relevance is not None and r.relevance >= 0.5 for r in kept)
    assert _search(mixed, "coffee menu", min_relevance=0.99) == []


def test_explanations_say_how_the_words_matched(mixed: LibraryCore) -> None:
    by_name = {Path(r.uri).name: r for r in _search(mixed, "coffee menu", limit=50)}
    memo, board, photo = by_name["memo-02.wav"], by_name["IMG_0501.jpg"], by_name["cafe-coffee-menu.jpg"]
    assert memo.explanation["words"]["match"] == "phrase" and memo.segment is not None
    assert memo.explanation["transcript"]["text"].lower().count("coffee menu") == 1
    assert board.explanation["words"]["match"] == "near"
    assert board.explanation["text_fields"] == ["meta.notes"]
    assert photo.match == "both" and photo.explanation["words"]["match"] == "phrase"
    assert photo.explanation["tags"] == ["coffee", "menu"]
    assert 0.0 <= photo.explanation["visual"]["relevance"] <= 1.0
    assert photo.relevance == pytest.approx(
        fuse(photo.explanation["visual"]["relevance"], photo.explanation["words"]["relevance"]), abs=1e-3
    )


def test_phrase_beats_near_beats_scattered_whatever_bm25_prefers(tmp_path: Path) -> None:
    """BM25 favours short fields: a reversed pair in a file name outscores a phrase in a long
    transcript. The match level decides first."""
    lib = open_library(tmp_path / "data")
    store = lib.store
    filler = "and then we talked about the weather and the parking and lunch " * 4

    def add(uri: str, said: str | None = None) -> int:
        asset_id = store.upsert_asset({"uri": uri, "kind": "audio", "size": 1, "mtime": 0.0, "status": "ok"})
        if said is not None:
            store.replace_segments(asset_id, "whisper", [{"start": 4.0, "end": 30.0, "text": said}])
        return asset_id

    with store.transaction():
        phrase = add("/memos/monday.wav", f"{filler} the quarterly budget review {filler}")
        near = add("/photos/review-budget-quarterly.jpg")
        scattered = add("/photos/quarterly.jpg")
        store.update_asset(scattered, {"meta": {"title": "budget"}})
        store.replace_tags(scattered, "user", [Tag("review", 1.0, "user")])
        add("/photos/budget.jpg")  # only one of the words: no match
        for i in range(10):  # an ordinary library around them, for BM25's statistics
            add(f"/memos/other-{i}.wav", f"see you at the office on day {i}")
            add(f"/photos/other-{i}.jpg")

    every_word = LexicalQuery.of("quarterly budget review")
    assert every_word is not None
    bm25 = [a for a, *_ in store.lexical_search([every_word.levels[-1]], "1", [], 10)]
    assert bm25.index(near) < bm25.index(phrase)  # what BM25 alone would do

    results = _search(lib, "quarterly budget review", mode="lexical")
    assert [r.asset_id for r in results] == [phrase, near, scattered]
    assert [r.explanation["words"]["match"] for r in results] == ["phrase", "near", "all words"]
    assert results[0].t == 4.0 and results[0].segment is not None
    relevance = [r.relevance for r in results]
    assert relevance == sorted(relevance, reverse=True) and all(0.6 <= (x or 0) < 1 for x in relevance)
    lib.close()


def test_lexical_query_expressions() -> None:
    one = LexicalQuery.of("Größe!")
    assert one is not None and one.levels == ((3, '"Größe"'),)
    three = LexicalQuery.of('red "shoe" NEAR(x')
    assert three is not None
    assert [level for level, _ in three.levels] == [3, 2, 1]
    assert three.levels[0][1] == '"red" + "shoe" + "NEAR" + "x"'
    assert three.levels[2][1] == '"red" AND "shoe" AND "NEAR" AND "x"'
    assert LexicalQuery.of(" ?! ") is None


def test_levels_never_overlap_and_fusion_stays_in_range() -> None:
    for level in (1, 2):
        best_below = lexical_relevance(level, -1e9)
        worst_above = lexical_relevance(level + 1, 0.0)
        assert best_below < worst_above == LEXICAL_LEVELS[level + 1][1]
    assert lexical_relevance(3, -1e9) < 1.0
    assert lexical_relevance(1, 5.0) == LEXICAL_LEVELS[1][1]  # a positive bm25 (never seen) adds nothing
    assert fuse(None, None) == 0.0 and fuse(0.3, None) == pytest.approx(0.3) and fuse(None, 0.9) == 0.9
    assert fuse(0.02, 0.9) == pytest.approx(0.902)  # a weak picture barely moves a phrase match
    assert fuse(0.9, 0.9) == pytest.approx(0.99) and fuse(1.0, 0.4) == 1.0


def test_hybrid_paging_survives_a_growing_library_and_other_sessions(tmp_path: Path) -> None:
    """Relevance is calibrated against a sample of the library, which moves as assets arrive and
    differs between the API's pooled sessions. The pages of one query must not: no gaps, no repeats."""
    lib = open_library(tmp_path / "data")
    store = lib.store
    rng = np.random.default_rng(7)
    query = lib.encoder.encode_texts(["cat photo"])[0]

    def add(uri: str, vector: np.ndarray | None = None, said: str | None = None) -> int:
        with store.transaction():
            row = {"uri": uri, "kind": "image", "size": 1, "mtime": 0.0, "status": "ok"}
            asset_id = store.upsert_asset(row)
            if vector is not None:
                store.replace_vectors(asset_id, TINY, (vector / np.linalg.norm(vector))[None, :], [None])
            if said is not None:
                store.replace_segments(asset_id, "whisper", [{"start": 1.0, "end": 3.0, "text": said}])
        return asset_id

    def near_query(closeness: float) -> np.ndarray:
        return closeness * query + rng.normal(size=query.shape).astype(np.float32) * 0.1

    # Pictures close to the query, their cosines packed tightly, among ordinary ones; memos and
    # a photo whose words match too.
    for i in range(24):
        add(f"/lib/close-{i}.jpg", near_query(0.3 + 0.02 * i))
        add(f"/lib/other-{i}.jpg", rng.normal(size=query.shape).astype(np.float32))
    for i in range(4):
        add(f"/memos/m{i}.wav", said="the cat photo we need" if i % 2 else "a cat in the photo of the day")
    add("/lib/cat-photo.jpg", near_query(0.5))
    everything = [r.asset_id for r in lib.engine.search(Query(text=(("cat photo", 1.0),), limit=100)).results]

    seen: list[int] = []
    cursor = None
    for page_number in range(50):
        engine = SearchEngine(store, lib.index, lib.encoder)  # another pooled session for each page
        page = engine.search(Query(text=(("cat photo", 1.0),), limit=4, cursor=cursor))
        seen += [r.asset_id for r in page.results]
        cursor = page.next_cursor
        if cursor is None:
            break
        for k in range(6):  # new pictures very like the query: the background moves towards it
            add(f"/late/{page_number}-{k}.jpg", near_query(3.0))
    assert len(seen) == len(set(seen)) and seen == everything
    lib.close()
