"""``GET /v1/duplicates``, ``/v1/tags/learned`` and ``collapse_duplicates`` over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from duplicate_set import VARIANTS, real_photos

EDITS = ("half", "jpeg30", "watermark", "crop90-top-left")


@pytest.fixture
def photos(photos: Path) -> Path:
    """The sample photos, plus edited copies of two of them."""
    originals = real_photos()
    for name in ("cat", "rocket"):
        for edit in EDITS:
            VARIANTS[edit](originals[name]).save(photos / f"{name} {edit}.jpg", quality=92)
    return photos


def test_duplicates_lists_each_group_with_its_representative_first(api: Any) -> None:
    response = api.get("/v1/duplicates")
    assert response.status_code == 200, response.text
    doc = response.json()
    groups = {Path(g["assets"][0]["uri"]).stem.split()[0]: g for g in doc["groups"]}
    assert groups.keys() == {"cat", "rocket"}
    for name, group in groups.items():
        names = {Path(a["uri"]).name for a in group["assets"]}
        assert names == {f"{name}.jpg"} | {f"{name} {edit}.jpg" for edit in EDITS}
        assert group["representative"] == group["assets"][0]["asset_id"] == api.asset_id(f"{name}.jpg")
        assert group["assets"][0]["similarity"] == 1.0
        assert all(0.9 <= a["similarity"] <= 1.0 and a["distance"] >= 0 for a in group["assets"])
    assert doc["threshold"] == 0.9
    only = api.get("/v1/duplicates", params={"filter": "filename:cat*", "threshold": 0.95}).json()
    assert [Path(g["assets"][0]["uri"]).name for g in only["groups"]] == ["cat.jpg"]


def test_duplicates_refuses_bad_thresholds_and_filters(api: Any, problem: Callable[[Any, int], Any]) -> None:
    problem(api.get("/v1/duplicates", params={"threshold": 0.5}), 422)
    problem(api.get("/v1/duplicates", params={"max_distance": 99}), 422)
    body = problem(api.get("/v1/duplicates", params={"filter": "near_duplicate_of:x"}), 400)
    assert "asset ids" in body["detail"]
    problem(api.client.get("/v1/duplicates"), 401)


def test_search_collapses_groups_and_filters_name_them(api: Any) -> None:
    cat = api.asset_id("cat.jpg")
    body = {"text": "a photo", "mode": "semantic", "limit": 100, "collapse_duplicates": True}
    collapsed = api.post("/v1/search", json=body).json()["results"]
    assert len(collapsed) == 8  # every sample photo once: the edited copies folded into their original
    hidden = [i for r in collapsed for i in r["explanation"].get("near_duplicates", [])]
    assert len(hidden) == 2 * len(EDITS)
    same = api.post("/v1/search", json={"filter": f"near_duplicate_of:{cat}", "sort": "id", "limit": 100})
    assert {Path(r["uri"]).name for r in same.json()["results"]} == {f"cat {edit}.jpg" for edit in EDITS}
    json_form = {"filter": {"field": "near_duplicate", "eq": True}, "sort": "id", "limit": 100}
    assert len(api.post("/v1/search", json=json_form).json()["results"]) == 2 * (len(EDITS) + 1)


def test_learn_a_tag_needs_write_scope_and_reports_cross_validation(
    api: Any, problem: Callable[[Any, int], Any]
) -> None:
    body = {"name": "feline", "positive": ["filename:cat*"], "negative": [api.asset_id("rocket.jpg")]}
    problem(api.post("/v1/tags/learned", json=body), 403)  # a read key

    response = api.post("/v1/tags/learned", scope="write", json=body)

    assert response.status_code == 201, response.text
    doc = response.json()
    assert doc["name"] == "feline" and len(doc["positives"]) == len(EDITS) + 1 and doc["tagged"] >= 5
    assert doc["report"]["folds"] == 5 and doc["report"]["recall"] >= 0.8
    listed = api.get("/v1/tags/learned").json()["learned"]
    assert [(t["name"], t["tagged"]) for t in listed] == [("feline", doc["tagged"])]
    found = api.post("/v1/search", json={"filter": "tag:feline", "sort": "id", "limit": 100}).json()[
        "results"
    ]
    assert len(found) == doc["tagged"]
    assert all(t["source"] == "learned" for r in found for t in r["tags"] if t["tag"] == "feline")


def test_learn_a_tag_names_bad_examples(api: Any, problem: Callable[[Any, int], Any]) -> None:
    bad = {"name": "x", "positive": [1, 2, 987654, "/not/ingested.jpg"]}
    body = problem(api.post("/v1/tags/learned", scope="write", json=bad), 422)
    assert "id 987654" in body["detail"] and "'/not/ingested.jpg'" in body["detail"]
    few = problem(api.post("/v1/tags/learned", scope="write", json={"name": "x", "positive": [1, 2]}), 422)
    assert "at least 3" in few["detail"]
    both = {"name": "x", "positive": [1, 2, 3], "negative": [3]}
    assert (
        "both positive and negative"
        in problem(api.post("/v1/tags/learned", scope="write", json=both), 422)["detail"]
    )
    vocab = {"name": "cat", "positive": [1, 2, 3]}
    assert "vocabulary" in problem(api.post("/v1/tags/learned", scope="write", json=vocab), 422)["detail"]
    problem(api.post("/v1/tags/learned", scope="write", json={"name": "", "positive": [1]}), 422)
    # Ids no SQLite row can have (a 64-bit overflow, 9,999 digits, other scripts' digits) are unknown.
    huge = {"name": "x", "positive": [1, 2, 3, 2**70, "9" * 9999, "٣"]}
    detail = problem(api.post("/v1/tags/learned", scope="write", json=huge), 422)["detail"]
    assert "id out of range" in detail and "(9999 characters)" in detail and "'٣'" in detail
    assert api.get("/v1/tags/learned").json() == {"learned": []}
