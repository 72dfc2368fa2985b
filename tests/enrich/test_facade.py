"""The public Python API, part one: opening and closing, ingest and its progress, search, similar.

Every error raised on purpose is an ``assetlens.AssetLensError`` with a message that names the
fault; each test of bad input checks the class, the message, and that nothing was left behind.
"""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import MEMO_SPRING_AT, PHOTOS
from PIL import Image

import assetlens
from assetlens.search.errors import QueryVectorError


def test_open_creates_nothing_until_the_first_ingest_and_with_closes_the_store(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with assetlens.open(data, model="tiny") as lib:
        assert lib.data_dir == data and repr(lib) == f"assetlens.Library({str(data)!r})"
        assert not data.exists()
        report = lib.ingest(PHOTOS / "cat.jpg")
        store = lib.core.store
        assert report.added == 1 and (data / "assetlens.db").is_file()
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        store.db.execute("SELECT 1")
    assert "index" not in lib.core.__dict__ and lib.count() == 1  # released; used again, it reopens
    lib.close()
    # An error inside the block closes it too, and the library opens again.
    with pytest.raises(assetlens.AssetNotFoundError), assetlens.open(data) as lib:
        store = lib.core.store
        lib.asset(999)
    with pytest.raises(sqlite3.ProgrammingError):
        store.db.execute("SELECT 1")
    with assetlens.open(data) as again:  # no model named: the library's own (tiny)
        assert (
            again.stats()["assets"]["image"] == 1 and again.core.encoder.model_id == "assetlens-tiny@random"
        )


def test_settings_are_read_once_and_bad_ones_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASSETLENS_BATCH_SIZE", "3")
    lib = assetlens.open(tmp_path / "data", model="tiny")
    monkeypatch.setenv("ASSETLENS_BATCH_SIZE", "5")
    assert lib.settings.enrich.batch_size == 3 and lib.settings.models.clip_model == "tiny"
    assert assetlens.Library(settings=lib.settings).settings is lib.settings
    with pytest.raises(TypeError, match="not both"):
        assetlens.Library(tmp_path, settings=lib.settings)
    monkeypatch.setenv("ASSETLENS_INDEX_KIND", "annoy")
    monkeypatch.setenv("ASSETLENS_WORKERS", "-2")
    with pytest.raises(assetlens.SettingsError) as caught:
        assetlens.open(tmp_path / "data")
    lines = str(caught.value).splitlines()
    assert len(lines) == 2 and lines[0].startswith("invalid setting ASSETLENS_INDEX_KIND='annoy'")
    assert any(line.startswith("invalid setting ASSETLENS_WORKERS='-2'") for line in lines)


def test_ingest_reports_and_calls_progress_with_rising_counts(tmp_path: Path, photos: Path) -> None:
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (photos / "notes.txt").write_text("not media")
    seen: list[assetlens.IngestProgress] = []
    with assetlens.open(tmp_path / "data", model="tiny") as lib:
        report = lib.ingest([str(photos)], batch_size=2, workers=1, progress=seen.append)
        assert isinstance(report, assetlens.IngestReport)
        assert (report.added, report.failed, report.skipped) == (8, 1, 0)
        assert [p.done for p in seen] == sorted(p.done for p in seen) and seen[-1].done == 9
        assert len({p.done for p in seen}) >= 4  # batches of two: the count rose batch by batch
        assert {p.total for p in seen} == {9} and {p.job_id for p in seen} == {report.job_id}
        assert all(p.elapsed_s >= 0 and p.images_per_s >= 0 for p in seen)
        failures = lib.failures(report.job_id)
        assert [f["uri"] for f in failures] == [str(photos / "broken.jpg")] and failures[0]["stage"] == "scan"
        again = lib.ingest(photos, progress=seen.append)
        assert (again.added, again.skipped, again.failed) == (
            0,
            9,
            0,
        )  # a failed file is not retried unchanged


def test_ingest_bad_input_is_refused_before_anything_is_created(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with assetlens.open(data, model="tiny") as lib:
        with pytest.raises(assetlens.PathNotFoundError, match=r"no such file or folder: .*nowhere") as caught:
            lib.ingest([PHOTOS, tmp_path / "nowhere"])
        assert isinstance(caught.value, FileNotFoundError)  # what callers of open() catch, too
        with pytest.raises(assetlens.QueryError, match="nothing to ingest"):
            lib.ingest([])
        with pytest.raises(assetlens.AssetLensError, match="vocabulary file not found"):
            lib.ingest(PHOTOS, vocab=tmp_path / "missing.txt")
    assert not data.exists()


def test_model_id_and_job_records_read_without_creating_anything(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert assetlens.open(data).model_id == "ViT-B-32@laion2b_s34b_b79k"  # the default, not loaded
    with assetlens.open(data, model="tiny") as lib:
        assert lib.model_id == "assetlens-tiny@random" and not data.exists()
        with pytest.raises(assetlens.LibraryNotFoundError):
            lib.job()
        report = lib.ingest(PHOTOS / "cat.jpg", transcribe=False)
        job = lib.job()
        assert job is not None and job["id"] == report.job_id and job == lib.job(report.job_id)
        assert job["kind"] == "ingest" and job["status"] == "done" and job["counts"]["added"] == 1
        assert lib.job(report.job_id + 1000) is None
    # Opened without a model, the library names its own; a model named otherwise is only a wish.
    assert (
        assetlens.open(data).model_id
        == assetlens.open(data, model="ViT-B-32").model_id
        == ("assetlens-tiny@random")
    )


def test_ingest_refuses_a_library_another_process_writes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); fcntl.flock(f, "
         "fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)", str(data / "ingest.lock")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with (
            assetlens.open(data, model="tiny") as lib,
            pytest.raises(assetlens.LibraryBusyError, match="--wait"),
        ):
            lib.ingest(PHOTOS)
    finally:
        holder.kill()
        holder.wait()


def test_search_results_are_frozen_records_with_every_field(shared_lib: Any, media: Path) -> None:
    page = shared_lib.search("cat", limit=3)
    assert isinstance(page, assetlens.SearchPage) and len(page.results) == 3 and page.next_cursor
    hit = page.results[0]
    assert isinstance(hit, assetlens.SearchResult)
    assert hit.uri == str(media / "photos" / "cat.jpg")  # the word matches its name
    for name in ("asset_id", "uri", "kind", "score", "relevance", "t", "tags", "meta", "explanation"):
        assert hasattr(hit, name), name
    assert hit.kind == "image" and hit.t is None and 0 <= hit.relevance <= 1 and hit.tags
    with pytest.raises(dataclasses.FrozenInstanceError):
        hit.uri = "elsewhere"  # type: ignore[misc]
    second = shared_lib.search("cat", limit=3, cursor=page.next_cursor)
    assert not {r.asset_id for r in page.results} & {r.asset_id for r in second.results}


def test_lexical_search_finds_the_spoken_words_at_their_second(shared_lib: Any, media: Path) -> None:
    hit = shared_lib.search("spring collection", mode="lexical").results[0]
    assert hit.uri == str(media / "speech" / "spring_memo.ogg") and hit.kind == "audio"
    assert MEMO_SPRING_AT[0] <= hit.t <= MEMO_SPRING_AT[1]
    assert "spring collection" in hit.segment["text"].lower() and hit.relevance > 0.5


def test_search_filters_in_both_forms_and_by_every_kind_of_example(
    shared_lib: Any, media: Path, tmp_path: Path
) -> None:
    as_text = shared_lib.search("photo", filter="kind:image", limit=50).results
    as_json = shared_lib.search("photo", filter={"field": "kind", "eq": "image"}, limit=50).results
    assert [r.asset_id for r in as_text] == [r.asset_id for r in as_json] and len(as_text) == 8
    assert all(r.kind == "image" for r in as_text)
    cat = media / "photos" / "cat.jpg"
    by_path = shared_lib.search(image=cat, limit=2).results
    by_bytes = shared_lib.search(image=cat.read_bytes(), limit=2).results
    by_pil = shared_lib.search(image=Image.open(cat), limit=2).results
    assert by_path[0].uri == by_bytes[0].uri == by_pil[0].uri == str(cat)
    by_asset = shared_lib.search(asset=cat, limit=3).results
    assert str(cat) not in [r.uri for r in by_asset]  # the example itself is left out
    vector = shared_lib.core.store.vectors_of(shared_lib.find(cat).id)[0][0]
    np.save(tmp_path / "q.npy", vector[None, :])
    for given in (vector, list(map(float, vector)), tmp_path / "q.npy", str(tmp_path / "q.npy")):
        assert shared_lib.search(vector=given, limit=1).results[0].uri == str(cat)
    newest = shared_lib.search(filter="kind:image", sort="created:desc", limit=8).results
    assert len(newest) == 8
    without = shared_lib.search("cat", negative=["a cat"], limit=50, mode="semantic").results
    assert len(without) == 8


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({}, assetlens.QueryError, "nothing to search for"),
        ({"text": "x", "filter": "kind:(image"}, assetlens.FilterError, "at column 12"),
        (
            {"text": "x", "filter": {"and": [{"field": "kind", "zz": 1}]}},
            assetlens.FilterError,
            r"\$\.and\[0\]",
        ),
        ({"text": "x", "mode": "fuzzy"}, assetlens.QueryError, "unknown mode 'fuzzy'"),
        ({"text": "x", "limit": 0}, assetlens.QueryError, "limit must be between 1 and"),
        ({"text": "x", "cursor": "garbage"}, assetlens.QueryError, "invalid cursor"),
        ({"text": "x", "min_relevance": 2}, assetlens.QueryError, "min_relevance must be between 0 and 1"),
        (
            {"text": "x", "sort": "created:sideways"},
            assetlens.QueryError,
            "sort direction must be asc or desc",
        ),
        ({"text": "x", "sort": "meta.a'b"}, assetlens.QueryError, "cannot sort by"),
        ({"vector": [1.0, 2.0]}, QueryVectorError, "has 2 values, but this library's vectors"),
        ({"vector": [float("nan")] * 64}, QueryVectorError, "NaN"),
        ({"vector": np.zeros(64)}, QueryVectorError, "all zeros"),
        ({"vector": ["a"] * 64}, QueryVectorError, "sequence of numbers"),
        ({"vector": "{tmp}/none.npy"}, QueryVectorError, "not a readable .npy array"),
        ({"vector": "{tmp}/matrix.npy"}, QueryVectorError, r"shape \(2, 64\), not one embedding"),
        ({"image": b"not an image"}, assetlens.QueryError, "not a readable image"),
        ({"image": "{tmp}/none.jpg"}, assetlens.QueryError, "no such image file"),
        ({"image": "{tmp}/matrix.npy", "asset": 1}, assetlens.QueryError, "not both"),
        ({"asset": 999}, assetlens.AssetNotFoundError, "no asset with id 999"),
        ({"asset": "/nowhere/x.jpg"}, assetlens.AssetNotFoundError, "no asset for '/nowhere/x.jpg'"),
    ],
)
def test_search_bad_input(
    shared_lib: Any, tmp_path: Path, arguments: dict[str, Any], error: type, message: str
) -> None:
    np.save(tmp_path / "matrix.npy", np.ones((2, 64), np.float32))
    arguments = {k: v.format(tmp=tmp_path) if isinstance(v, str) else v for k, v in arguments.items()}
    with pytest.raises(error, match=message) as caught:
        shared_lib.search(**arguments)
    assert isinstance(caught.value, assetlens.AssetLensError)


def test_similar_takes_an_asset_a_file_or_a_picture(shared_lib: Any, media: Path, tmp_path: Path) -> None:
    rocket = media / "photos" / "rocket.jpg"
    rocket_id = shared_lib.find(rocket).id
    by_id = shared_lib.similar(rocket_id, limit=3).results
    assert [r.asset_id for r in by_id] == [
        r.asset_id for r in shared_lib.similar(str(rocket_id), limit=3).results
    ]
    assert [r.asset_id for r in by_id] == [r.asset_id for r in shared_lib.similar(rocket, limit=3).results]
    assert rocket_id not in [r.asset_id for r in by_id] and len(by_id) == 3
    crop = tmp_path / "crop of rocket.png"
    Image.open(rocket).crop((20, 20, 400, 400)).save(crop)  # a file never ingested: read as a picture
    assert shared_lib.similar(crop, limit=8).results[0].uri == str(rocket)
    assert shared_lib.similar(Image.open(crop), limit=1).results[0].uri == str(rocket)
    only_images = shared_lib.similar(rocket_id, filter="kind:audio").results
    assert only_images == []
    with pytest.raises(assetlens.QueryError, match="no such file"):
        shared_lib.similar(tmp_path / "none.jpg")
    with pytest.raises(assetlens.AssetNotFoundError):
        shared_lib.similar(999)
    with pytest.raises(assetlens.FilterError):
        shared_lib.similar(rocket_id, filter="kind:")


def test_a_library_of_another_model_is_refused_by_name(shared_lib: Any) -> None:
    models = shared_lib.settings.models.model_copy(update={"clip_model": "ViT-B-32@random"})
    other = assetlens.Library(settings=dataclasses.replace(shared_lib.settings, models=models))
    with (
        other,
        pytest.raises(assetlens.QueryError, match="embedded with assetlens-tiny@random, but the query"),
    ):
        other.search("x")
    with pytest.raises(assetlens.AssetLensError, match="unknown CLIP model 'nope'"):
        assetlens.open(shared_lib.data_dir, model="nope").search("x")


def test_import_of_assetlens_loads_neither_torch_nor_the_store() -> None:
    heavy = "{'torch', 'sqlite3', 'fastapi'}"
    code = f"import sys, assetlens; print(assetlens.__version__); print(sorted({heavy} & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[0] and out[0] != "0+unknown" and out[1] == "[]"
    assert os.path.isfile(Path(assetlens.__file__).with_name("py.typed"))
