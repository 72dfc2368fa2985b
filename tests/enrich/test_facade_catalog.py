"""The public Python API, part two: assets, DAM fields, facets, export, transcripts, stats, upkeep.

Also: every reading method on a folder that holds no library raises ``LibraryNotFoundError``
and creates nothing.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import MEMO_SPRING_AT, PHOTOS

import assetlens
from assetlens.search.errors import FieldTypeError


@pytest.fixture
def lib(tmp_path: Path, photos: Path) -> Any:
    """A library of its own (these tests write), with the photos ingested."""
    with assetlens.open(tmp_path / "data", model="tiny") as library:
        library.ingest(photos, transcribe=False)
        yield library


def test_asset_and_find_by_id_digits_or_path(shared_lib: Any, media: Path) -> None:
    memo = media / "speech" / "spring_memo.ogg"
    record = shared_lib.asset(memo)
    assert isinstance(record, assetlens.AssetRecord) and record.uri == str(memo)
    assert record.asset.kind == "audio" and record.transcript and record.tags == ()
    assert shared_lib.asset(record.id) == shared_lib.asset(str(record.id)) == record
    assert shared_lib.find(str(memo)).id == record.id
    doc = json.loads(json.dumps(record.as_dict()))
    assert doc["uri"] == str(memo) and doc["transcript"][2]["text"].strip().startswith(
        "The spring collection"
    )
    photo = shared_lib.asset(media / "photos" / "cat.jpg")
    assert photo.asset.width and photo.tags and photo.tags[0].source == "clip"


@pytest.mark.parametrize(
    ("ref", "message"),
    [(999, "no asset with id 999"), ("999", "no asset with id 999"), (True, "no asset for True"),
     ("/nowhere/cat.jpg", "no asset for '/nowhere/cat.jpg'"), (PHOTOS / "cat.jpg", "no asset for")],
)  # fmt: skip
def test_unknown_assets_are_named(shared_lib: Any, ref: Any, message: str) -> None:
    for method in (
        shared_lib.asset,
        shared_lib.find,
        shared_lib.transcript,
        lambda r: shared_lib.set_meta(r, a=1),
    ):
        with pytest.raises(assetlens.AssetNotFoundError, match=message):
            method(ref)


def test_transcript_in_every_format(shared_lib: Any, media: Path) -> None:
    memo = media / "speech" / "spring_memo.ogg"
    segments = json.loads(shared_lib.transcript(memo))["segments"]
    spring = next(s for s in segments if "spring collection" in s["text"].lower())
    assert MEMO_SPRING_AT[0] <= spring["start"] <= MEMO_SPRING_AT[1] and spring["words"]
    assert "spring collection" in shared_lib.transcript(memo, "txt").lower()
    assert "-->" in shared_lib.transcript(memo, "srt") and shared_lib.transcript(memo, "vtt").startswith(
        "WEBVTT"
    )
    with pytest.raises(
        assetlens.QueryError, match="unknown transcript format 'doc': use txt, srt, vtt, json"
    ):
        shared_lib.transcript(memo, "doc")
    with pytest.raises(assetlens.QueryError, match="has no transcript: run `assetlens transcribe"):
        shared_lib.transcript(media / "photos" / "cat.jpg")


def test_dam_fields_declared_set_filtered_and_counted(lib: Any, photos: Path) -> None:
    update = lib.declare_fields(campaign="string", rights_expires="date", rating="number")
    assert update.conflict_count == 0 and lib.field_types()["rights_expires"] == "date"
    meta = lib.set_meta(photos / "rocket.jpg", campaign="space week", rights_expires="2030-06-30", rating=4)
    assert meta == {"campaign": "space week", "rights_expires": "2030-06-30", "rating": 4}
    lib.set_meta(
        str(lib.find(photos / "astronaut.jpg").id), campaign="space week", rights_expires="2020-01-01"
    )
    lib.set_meta(photos / "coffee.jpg", campaign="morning")
    assert lib.facets("campaign") == [("space week", 2), ("morning", 1)]
    assert lib.facets("campaign", 'rights_expires>="2025-01-01"') == [("space week", 1)]
    assert lib.count('campaign:"space week"') == 2 and lib.count() == 8
    assert lib.count({"field": "meta.rating", "gte": 4}) == 1
    hits = lib.search("photo", filter='campaign:"space week" rights_expires>=today', limit=50).results
    assert [h.uri for h in hits] == [str(photos / "rocket.jpg")] and hits[0].meta["campaign"] == "space week"
    assert lib.set_meta(photos / "rocket.jpg", rating=None) == {
        "campaign": "space week",
        "rights_expires": "2030-06-30",
    }
    assert [v for v, _ in lib.facets("created", by="year")]
    # A value that does not fit its declared type: an error naming the field, and nothing written.
    with pytest.raises(FieldTypeError, match="rights_expires must be a date"):
        lib.set_meta(photos / "coffee.jpg", campaign="evening", rights_expires="soon")
    assert lib.asset(photos / "coffee.jpg").asset.meta == {"campaign": "morning"}
    with pytest.raises(assetlens.AssetLensError, match="unknown field type 'colour'"):
        lib.declare_fields(shade="colour")
    with pytest.raises(assetlens.QueryError, match="by must be one of year, month, day"):
        lib.facets("created", by="week")
    with pytest.raises(assetlens.FilterError, match="invalid field name"):
        lib.facets("no such field!")
    with pytest.raises(assetlens.FilterError):
        lib.count("campaign:(")


def test_import_meta_from_csv_and_its_bad_input(lib: Any, photos: Path, tmp_path: Path) -> None:
    sheet = tmp_path / "fields.csv"
    sheet.write_text(f"path,sku,region\n{photos / 'cat.jpg'},SKU-1,DE\n{tmp_path / 'gone.jpg'},SKU-2,AT\n")
    dry = lib.import_meta(sheet, dry_run=True)
    assert (dry.rows, dry.matched, dry.unmatched_count, dry.written) == (2, 1, 1, False)
    assert "sku" not in lib.asset(photos / "cat.jpg").asset.meta
    report = lib.import_meta(sheet, format="csv")
    assert report.updated == 1 and lib.asset(photos / "cat.jpg").asset.meta == {
        "sku": "SKU-1",
        "region": "DE",
    }
    with pytest.raises(assetlens.AssetLensError, match="no such file"):
        lib.import_meta(tmp_path / "none.csv")
    with pytest.raises(assetlens.QueryError, match="unknown meta file format 'xml'"):
        lib.import_meta(sheet, format="xml")


def test_export_to_a_file_a_stream_sidecars_and_parquet(lib: Any, photos: Path, tmp_path: Path) -> None:
    lib.set_meta(photos / "rocket.jpg", campaign="space week")
    report = lib.export("csv", tmp_path / "all.csv")
    rows = list(csv.DictReader((tmp_path / "all.csv").open()))
    assert report.assets == len(rows) == 8 and report.output == str(tmp_path / "all.csv")
    stream = io.StringIO()
    assert lib.export("jsonl", stream, 'campaign:"space week"').assets == 1
    assert json.loads(stream.getvalue())["meta"] == {"campaign": "space week"}
    sidecars = lib.export("xmp", tmp_path / "sidecars", "kind:image", min_score=0.0)
    assert sidecars.assets == 8 and len(list((tmp_path / "sidecars").rglob("*.xmp"))) == 8
    vectors = lib.export("parquet", tmp_path / "vectors.parquet")
    assert vectors.assets == 8
    with assetlens.open(tmp_path / "other", model="tiny") as other:  # the vectors go into another library
        imported = other.import_vectors(tmp_path / "vectors.parquet")
        assert (imported.added, imported.failed) == (8, 0) and other.index_status()["vectors"] == 8
        assert other.find(photos / "rocket.jpg").meta == {"campaign": "space week"}


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda lib, tmp: lib.export("pdf", tmp / "x.pdf"),
            assetlens.QueryError,
            "unknown export format 'pdf'",
        ),
        (lambda lib, tmp: lib.export("csv"), assetlens.QueryError, "needs a file or a stream"),
        (lambda lib, tmp: lib.export("xmp", io.StringIO()), assetlens.QueryError, "not a stream"),
        (
            lambda lib, tmp: lib.export("csv", tmp / "x.csv", naming="base"),
            assetlens.QueryError,
            "XMP export only",
        ),
        (
            lambda lib, tmp: lib.export("parquet", tmp / "v.parquet", "kind:image"),
            assetlens.QueryError,
            "no filter",
        ),
        (lambda lib, tmp: lib.export("csv", tmp / "no" / "x.csv"), assetlens.AssetLensError, "cannot write"),
        (lambda lib, tmp: lib.export("csv", tmp / "x.csv", "kind:("), assetlens.FilterError, "column"),
        (lambda lib, tmp: lib.import_vectors(tmp / "none.parquet"), assetlens.AssetLensError, "no such file"),
        (
            lambda lib, tmp: lib.import_vectors(PHOTOS / "cat.jpg"),
            assetlens.AssetLensError,
            "not a readable Parquet",
        ),
        (lambda lib, tmp: lib.rebuild_index("annoy"), assetlens.QueryError, "unknown index kind 'annoy'"),
        (lambda lib, tmp: lib.create_api_key("root"), assetlens.QueryError, "unknown scope 'root'"),
        (lambda lib, tmp: lib.transcribe("some"), assetlens.QueryError, "not 'some'"),
        (lambda lib, tmp: lib.transcribe([999]), assetlens.AssetNotFoundError, "999"),
        (
            lambda lib, tmp: lib.retag(vocab=tmp / "none.txt"),
            assetlens.AssetLensError,
            "vocabulary file not found",
        ),
    ],
)
def test_catalog_and_upkeep_bad_input(
    lib: Any, tmp_path: Path, call: Callable[[Any, Path], Any], error: type, message: str
) -> None:
    with pytest.raises(error, match=message) as caught:
        call(lib, tmp_path)
    assert isinstance(caught.value, assetlens.AssetLensError)


def test_stats_failures_index_keys_retag_reembed_transcribe(lib: Any, photos: Path, tmp_path: Path) -> None:
    stats = lib.stats()
    assert stats["assets"]["image"] == 8 and stats["model"] == "assetlens-tiny@random"
    assert stats["last_job"]["kind"] == "ingest" and isinstance(stats["last_job"]["args"], dict)
    assert lib.failures() == [] and lib.index_status()["in_step"] is True
    assert lib.rebuild_index("flat")["kind"] == "flat"
    key_id, key = lib.create_api_key("read", "notebook")
    assert key.startswith("al_") and [k["name"] for k in lib.api_keys()] == ["notebook"]
    assert key not in json.dumps(lib.api_keys())
    assert lib.revoke_api_key(key_id) is True and lib.revoke_api_key(999) is False
    assert lib.api_keys()[0]["revoked_at"]
    vocab = tmp_path / "house.txt"
    vocab.write_text("[house]\nzorblax widget = zorblax > gadget\n")
    assert lib.retag(vocab=vocab) == 8 and (lib.data_dir / "vocabulary.txt").read_text() == vocab.read_text()
    assert lib.reembed().skipped == 8  # already on the configured model: nothing to re-encode
    job, report = lib.transcribe("missing")  # photos have no sound: nothing to do
    assert job > 0 and report.transcribed == 0


def test_transcribe_a_chosen_asset_again(tmp_path: Path, media: Path) -> None:
    with assetlens.open(tmp_path / "data", model="tiny") as lib:
        lib.ingest(media / "speech", transcribe=False)
        memo = media / "speech" / "spring_memo.ogg"
        assert lib.asset(memo).transcript == ()
        _, report = lib.transcribe("missing")
        assert report.transcribed == 1 and lib.search("spring collection", mode="lexical").results[
            0
        ].uri == str(memo)
        _, again = lib.transcribe([memo])
        assert again.transcribed == 1


READERS: list[tuple[str, Callable[[Any], Any]]] = [
    ("search", lambda lib: lib.search("x")),
    ("similar", lambda lib: lib.similar(1)),
    ("asset", lambda lib: lib.asset(1)),
    ("find", lambda lib: lib.find("x.jpg")),
    ("count", lambda lib: lib.count()),
    ("facets", lambda lib: lib.facets("kind")),
    ("export", lambda lib: lib.export("jsonl", io.StringIO())),
    ("transcript", lambda lib: lib.transcript(1)),
    ("stats", lambda lib: lib.stats()),
    ("set_meta", lambda lib: lib.set_meta(1, a=1)),
    ("import_meta", lambda lib: lib.import_meta(PHOTOS / "LICENSE.txt")),
    ("retag", lambda lib: lib.retag()),
    ("reembed", lambda lib: lib.reembed()),
    ("transcribe", lambda lib: lib.transcribe("all")),
    ("failures", lambda lib: lib.failures()),
    ("index_status", lambda lib: lib.index_status()),
    ("rebuild_index", lambda lib: lib.rebuild_index()),
    ("revoke_api_key", lambda lib: lib.revoke_api_key(1)),
]


@pytest.mark.parametrize(("name", "call"), READERS, ids=[n for n, _ in READERS])
def test_reading_a_library_that_does_not_exist_is_an_error_and_creates_nothing(
    tmp_path: Path, name: str, call: Callable[[Any], Any]
) -> None:
    data = tmp_path / "never made"
    with assetlens.open(data, model="tiny") as lib:
        with pytest.raises(assetlens.LibraryNotFoundError, match=r"no AssetLens library in .*never made yet"):
            call(lib)
        assert lib.field_types() == {} and lib.api_keys() == []  # nothing to list, nothing made
    assert not data.exists()
