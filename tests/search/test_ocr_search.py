"""Text read in pictures (OCR) in the store and in search, on a real library.

The library: the sample photos, a photo with a banner drawn on it and a video with a title
slide, ingested with the tiny CLIP; the text is read by the real OCR stage
(:class:`enrich.ocr.TextStage`) and written with ``Store.ocr``, as the pipeline does.
"""

from __future__ import annotations

import csv
import io
import json
import random
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from helpers import PHOTOS, ingester_for, open_library
from libxmp import XMPMeta
from ocr_support import SLIDE_END, SLIDE_START, photos, render, slide_video

from assetlens.enrich.decode import decode_image
from assetlens.enrich.keyframes import KeyframeOptions
from assetlens.enrich.ocr import TextStage
from assetlens.enrich.video import extract_keyframes
from assetlens.models.ocr import TextReader
from assetlens.models.settings import OcrSettings
from assetlens.search.api import ApiSettings, create_app
from assetlens.search.api.keys import create_key
from assetlens.search.catalog.export import export_csv, export_jsonl, export_xmp
from assetlens.search.filters import parse_filter
from assetlens.search.library import LibraryCore
from assetlens.search.query_types import Query
from assetlens.search.store import MIGRATIONS, Store, TextLine
from assetlens.search.store.schema import SQL_FUNCTIONS, _split_sql

ASSETLENS = "https://assetlens.dev/ns/1.0/"
BANNER = "HARVEST MARKET"


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LibraryCore, Path]]:
    root = tmp_path_factory.mktemp("ocr-library")
    files = root / "files"
    shutil.copytree(PHOTOS, files, ignore=shutil.ignore_patterns("*.txt"))
    banner = render(photos(("coffee",))["coffee"], BANNER, size=64, colour=(250, 250, 250), background="band",
                    rng=random.Random(5))  # fmt: skip
    banner.image.save(files / "market banner.jpg", quality=92)
    slide_video(files / "talk.mp4")
    lib = open_library(root / "data")
    ingester_for(lib).ingest([files])
    stage = TextStage(TextReader(OcrSettings()), "auto")
    with lib.store.transaction():
        for asset_id, uri in lib.store.uris():
            path = Path(uri)
            if path.suffix == ".mp4":
                _, keyframes = extract_keyframes(path, KeyframeOptions(min_side=360))
                lines = stage.frames([(k.image, k.t) for k in keyframes])
            elif path.name != "rocket.jpg":  # left unread: `ocr --missing` would read it
                decoded = decode_image(path)
                full = (decoded.metadata.width, decoded.metadata.height)
                lines = stage.image(path, decoded.image, full)
            else:
                continue
            lib.store.ocr.replace(asset_id, stage.model, lines)
    yield lib, files
    lib.close()


def asset_id(lib: LibraryCore, files: Path, name: str) -> int:
    asset = lib.store.asset_by_uri(str(files / name))
    assert asset is not None
    return asset.id


def test_the_store_keeps_each_line_with_its_box_confidence_time_and_model(library) -> None:
    lib, files = library
    (line,) = lib.store.ocr.lines_of(asset_id(lib, files, "market banner.jpg"))
    assert line.text == BANNER and line.t is None and line.confidence >= 0.9
    assert line.model.startswith("rapidocr-3.10.0:")
    assert all(0 <= v <= 1 for v in line.box) and line.box[0] < line.box[2] and line.box[1] < line.box[3]
    (slide_line,) = lib.store.ocr.lines_of(asset_id(lib, files, "talk.mp4"))
    assert slide_line.text == "Quarterly Results 2025" and SLIDE_START <= slide_line.t < SLIDE_END
    # Read with no text is remembered; never read is not.
    cat = asset_id(lib, files, "cat.jpg")
    assert lib.store.ocr.lines_of(cat) == [] and lib.store.ocr.read_by(cat) is not None
    assert lib.store.ocr.unread() == [asset_id(lib, files, "rocket.jpg")]
    assert lib.store.ocr.counts() == {"read": 9, "with_text": 2, "lines": 2}


@pytest.mark.parametrize("mode", ["lexical", "hybrid"])
def test_search_finds_text_in_a_picture_and_explains_the_line(library, mode: str) -> None:
    lib, _ = library
    page = lib.engine.search(Query(text=(("harvest market", 1.0),), mode=mode))
    top = page.results[0]
    assert Path(top.uri).name == "market banner.jpg" and top.match in ("text", "both")
    assert top.explanation["ocr"]["text"] == BANNER and top.explanation["ocr"]["t"] is None
    assert len(top.explanation["ocr"]["box"]) == 4 and top.t is None


@pytest.mark.parametrize("mode", ["lexical", "hybrid"])
def test_a_video_result_starts_at_the_frame_whose_text_matched(library, mode: str) -> None:
    lib, _ = library
    page = lib.engine.search(Query(text=(("quarterly results", 1.0),), mode=mode))
    top = page.results[0]
    assert top.kind == "video" and SLIDE_START <= top.t < SLIDE_END
    assert top.explanation["ocr"]["t"] == top.t and top.explanation["ocr"]["text"] == "Quarterly Results 2025"


def test_words_split_over_lines_still_match_and_case_and_accents_do_not_matter(library) -> None:
    lib, files = library
    video = asset_id(lib, files, "talk.mp4")
    with lib.store.transaction():
        before, model = lib.store.ocr.lines_of(video), lib.store.ocr.read_by(video)
        lines = [
            TextLine("Spring", (0.1, 0.1, 0.3, 0.2), 0.95, 4.0),
            TextLine("CRÈME brûlée", (0.1, 0.3, 0.5, 0.4), 0.9, 4.0),
        ]
        lib.store.ocr.replace(video, "test", lines)
    try:
        page = lib.engine.search(Query(text=(("spring creme brulee", 1.0),), mode="lexical"))
        assert [r.asset_id for r in page.results] == [video]
        assert page.results[0].explanation["ocr"]["text"] == "CRÈME brûlée"  # holds two of the three words
    finally:
        with lib.store.transaction():
            lib.store.ocr.replace(video, str(model), before)


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('ocr:"harvest market"', {"market banner.jpg"}),
        ("ocr:HARVEST", {"market banner.jpg"}),
        ({"field": "ocr", "eq": "harvest market"}, {"market banner.jpg"}),
        ("ocr:quarterly kind:video", {"talk.mp4"}),
        ("ocr:*", {"market banner.jpg", "talk.mp4"}),
        ({"field": "ocr", "exists": True}, {"market banner.jpg", "talk.mp4"}),
        ('ocr:"harvest quarterly"', set()),  # every word in one asset's text
        ("harvest", {"market banner.jpg"}),  # a bare word searches every text, OCR included
    ],
)
def test_the_ocr_filter_matches_words_in_the_text_read(library, expr, names: set[str]) -> None:
    lib, _ = library
    ids = lib.store.matching_asset_ids(*_compiled(expr))
    assert {Path(uri).name for i, uri in lib.store.uris() if i in ids} == names


@pytest.mark.parametrize(
    "expr", ["-ocr:*", {"not": {"field": "ocr", "exists": True}}, "ocr!=harvest -ocr:quarterly"]
)
def test_negated_ocr_filters_keep_every_other_asset(library, expr) -> None:
    lib, _ = library
    ids = lib.store.matching_asset_ids(*_compiled(expr))
    assert {Path(uri).name for i, uri in lib.store.uris() if i in ids} == {
        p.name for p in PHOTOS.glob("*.jpg")
    }


def test_a_filtered_vector_search_with_the_ocr_field(library) -> None:
    lib, _ = library
    page = lib.engine.search(Query(text=(("a picture", 1.0),), mode="semantic", filter=parse_filter("ocr:*")))
    assert {Path(r.uri).name for r in page.results} == {"market banner.jpg", "talk.mp4"}


def _compiled(expr):
    from assetlens.search.filters import compile_filter

    return compile_filter(parse_filter(expr))


def test_exports_carry_the_text(library, tmp_path: Path) -> None:
    lib, _ = library
    out = io.StringIO()
    export_jsonl(lib.store, out, 'ocr:"harvest market"')
    (doc,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [x["text"] for x in doc["ocr"]] == [BANNER] and set(doc["ocr"][0]) == {
        "text",
        "box",
        "confidence",
        "t",
    }
    out = io.StringIO()
    export_csv(lib.store, out, "ocr:*")
    rows = {Path(r["uri"]).name: r for r in csv.DictReader(io.StringIO(out.getvalue()))}
    assert rows["market banner.jpg"]["ocr_text"] == BANNER
    assert rows["talk.mp4"]["ocr_text"] == "Quarterly Results 2025"
    report = export_xmp(lib.store, "ocr:harvest", sidecar_dir=tmp_path / "xmp")
    assert report.assets == 1
    xmp = XMPMeta()
    xmp.parse_from_str((tmp_path / "xmp" / "market banner.jpg.xmp").read_text(encoding="utf-8"))
    assert xmp.get_property(ASSETLENS, "text[1]/assetlens:value") == BANNER
    assert len(xmp.get_property(ASSETLENS, "text[1]/assetlens:box").split()) == 4
    assert not xmp.does_property_exist("http://purl.org/dc/elements/1.1/", "description")


def _image(store: Store, uri: str) -> int:
    return store.upsert_asset({"uri": uri, "kind": "image", "size": 1, "mtime": 0.0, "status": "ok"})


def _ids(store: Store, expr: str) -> list[int]:
    return sorted(int(i) for i in store.matching_asset_ids(*_compiled(expr)))


def test_deleting_an_asset_removes_its_text_from_the_index(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    with store.transaction():
        a = _image(store, "/x/a.jpg")
        store.ocr.replace(a, "m", [TextLine("Grand opening", (0, 0, 1, 0.1), 0.9)])
    assert _ids(store, "ocr:opening") == [a]
    with store.transaction():
        store.delete_asset(a)
    assert store.db.execute("SELECT count(*) FROM ocr_fts").fetchone()[0] == 0
    assert store.db.execute("SELECT count(*) FROM ocr_reads").fetchone()[0] == 0


def test_replacing_copying_and_forgetting_keep_the_index_level(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.db")
    with store.transaction():
        a, b = (_image(store, f"/x/{n}.jpg") for n in "ab")
        store.ocr.replace(a, "m1", [TextLine("old words", (0, 0, 1, 0.1), 0.9)])
        store.ocr.replace(a, "m2", [TextLine("new words", (0, 0, 1, 0.1), 0.9, None, "m2")])
        store.ocr.copy(a, b)
    assert _ids(store, "ocr:old") == []
    assert sorted(_ids(store, "ocr:new")) == [a, b]
    assert store.ocr.read_by(b) == "m2" and store.ocr.lines_of(b)[0].text == "new words"
    with store.transaction():
        store.ocr.forget(a)
    assert _ids(store, "ocr:new") == [b] and store.ocr.read_by(a) is None
    # The FTS index is consistent with its content.
    store.db.execute("INSERT INTO ocr_fts(ocr_fts) VALUES ('integrity-check')")


def test_a_library_of_the_previous_schema_gains_the_ocr_tables(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    for name, (arity, function) in SQL_FUNCTIONS.items():
        db.create_function(name, arity, function)
    before_ocr = next(i for i, script in enumerate(MIGRATIONS) if "CREATE TABLE ocr_lines" in script)
    for number, script in enumerate(MIGRATIONS[:before_ocr], 1):
        for statement in _split_sql(script):
            db.execute(statement)
        db.execute(f"PRAGMA user_version = {number}")
    row = "('/x.jpg', 1, 0, 'x', 'ok', 'image')"
    db.execute(f"INSERT INTO assets (uri, size, mtime, ingested_at, status, kind) VALUES {row}")
    db.close()
    store = Store(path)
    assert store.schema_version == len(MIGRATIONS)
    assert store.ocr.unread() == [1] and store.ocr.counts() == {"read": 0, "with_text": 0, "lines": 0}


# --- HTTP API ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(library) -> Iterator[tuple[TestClient, dict[str, str]]]:
    lib, files = library
    with lib.store.transaction():
        key = create_key(lib.store, "read", "ocr-test")[1]
    with TestClient(create_app(ApiSettings(roots=(files,)), lib)) as c:
        yield c, {"Authorization": f"Bearer {key}"}


def test_the_text_endpoint_lists_the_lines_and_the_one_a_query_matched(library, client) -> None:
    lib, files = library
    c, auth = client
    video = asset_id(lib, files, "talk.mp4")
    body = c.get(f"/v1/assets/{video}/text", params={"q": "results"}, headers=auth).json()
    assert body["asset_id"] == video and body["model"].startswith("rapidocr-3.10.0:")
    assert [x["text"] for x in body["lines"]] == ["Quarterly Results 2025"]
    assert body["match"] == body["lines"][0] and SLIDE_START <= body["match"]["t"] < SLIDE_END
    assert c.get(f"/v1/assets/{video}/text", params={"q": "zebra"}, headers=auth).json()["match"] is None
    cat = asset_id(lib, files, "cat.jpg")
    assert c.get(f"/v1/assets/{cat}/text", headers=auth).json()["lines"] == []
    asset = c.get(f"/v1/assets/{video}", headers=auth).json()
    assert [x["text"] for x in asset["ocr"]] == ["Quarterly Results 2025"]


def test_the_text_endpoint_refuses_unread_and_unknown_assets(library, client) -> None:
    lib, files = library
    c, auth = client
    unread = c.get(f"/v1/assets/{asset_id(lib, files, 'rocket.jpg')}/text", headers=auth)
    assert unread.status_code == 404 and "assetlens ocr" in unread.json()["detail"]
    assert unread.headers["content-type"].startswith("application/problem+json")
    assert c.get("/v1/assets/999999/text", headers=auth).status_code == 404
    assert c.get("/v1/assets/1/text", params={"q": "x" * 1001}, headers=auth).status_code == 422
    assert c.get("/v1/assets/1/text").status_code == 401


def test_search_results_over_http_explain_the_ocr_match(client) -> None:
    c, auth = client
    body = c.post("/v1/search", json={"text": "harvest market", "mode": "lexical"}, headers=auth).json()
    top = body["results"][0]
    assert top["explanation"]["ocr"]["text"] == BANNER and top["uri"].endswith("market banner.jpg")


def test_show_and_stats_report_the_text(library) -> None:
    from click.testing import CliRunner

    from assetlens.enrich.cli import cli

    lib, files = library
    data = str(lib.settings.data_dir)
    shown = CliRunner().invoke(cli, ["--data-dir", data, "show", str(files / "talk.mp4"), "--json"])
    assert shown.exit_code == 0, shown.output
    (line,) = json.loads(shown.output)["ocr"]
    assert set(line) == {"text", "box", "confidence", "t"} and line["text"] == "Quarterly Results 2025"
    assert SLIDE_START <= line["t"] < SLIDE_END
    human = CliRunner().invoke(cli, ["--data-dir", data, "show", str(files / "talk.mp4")])
    assert "text in pictures:" in human.output and "Quarterly Results 2025" in human.output
    stats = json.loads(CliRunner().invoke(cli, ["--data-dir", data, "stats", "--json"]).output)
    assert stats["ocr"] == {"read": 9, "with_text": 2, "lines": 2}
