"""DAM metadata on a real SQLite store: the field schema, setting fields, bulk imports, facets, CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from search_library import library_store, run_cli, uri

from assetlens.search.catalog.meta import (
    MetaImportError,
    declare_fields,
    facets,
    import_meta,
    load_schema,
    save_schema,
    set_meta,
)
from assetlens.search.errors import AssetNotFoundError, FieldTypeError, FilterError
from assetlens.search.filters.fields import FieldSchema
from assetlens.search.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    yield from library_store(tmp_path)


# --- schema ----------------------------------------------------------------------------------


def test_schema_is_persisted_and_merged(store: Store) -> None:
    assert load_schema(store).as_dict() == {}
    declare_fields(store, {"rights_expires": "date", "meta.rating": "Number"})
    declare_fields(store, {"keywords": "list"})
    assert load_schema(store).as_dict() == {"rights_expires": "date", "rating": "number", "keywords": "list"}
    declare_fields(store, {"rating": ""})  # NAME= undeclares
    assert load_schema(store).as_dict() == {"rights_expires": "date", "keywords": "list"}
    reopened = Store(store.path)
    assert load_schema(reopened).type_of("meta.rights_expires") == "date"
    reopened.close()


def test_schema_rejects_unknown_types_and_names(store: Store) -> None:
    with pytest.raises(FieldTypeError, match="unknown field type 'colour'"):
        declare_fields(store, {"rating": "colour"})
    with pytest.raises(FilterError, match="invalid field name"):
        declare_fields(store, {"bad name": "string"})
    assert load_schema(store).as_dict() == {}


def test_declaring_a_type_reports_stored_values_that_do_not_fit(store: Store) -> None:
    set_meta(store, 1, {"rating": "five"})
    set_meta(store, 2, {"rating": "4"})
    update = declare_fields(store, {"rating": "number"})
    assert update.conflict_count == 1
    assert update.conflicts == [(1, "meta.rating", "five")]
    assert store.meta_of(1)["rating"] == "five"  # kept as it was


# --- set_meta --------------------------------------------------------------------------------


def test_set_meta_coerces_to_declared_types(store: Store) -> None:
    types = {"rights_expires": "date", "rating": "number", "tags_extra": "list", "approved": "boolean"}
    save_schema(store, FieldSchema.from_dict({**types, "sku": "string"}))
    meta = set_meta(store, 1, {"rights_expires": "2025-06-30T10:00:00+02:00", "rating": "4.5",
                               "tags_extra": "red, blue ,", "approved": "yes", "sku": "00123",
                               "camera.make": "Nikon", "count": "12", "note": "a, b"})  # fmt: skip
    assert meta["rights_expires"] == "2025-06-30T08:00:00"
    assert meta["rating"] == 4.5 and meta["tags_extra"] == ["red", "blue"] and meta["approved"] is True
    assert meta["sku"] == "00123"  # declared string: stays text
    assert meta["count"] == 12  # undeclared numeric text reads as a number
    assert meta["camera"] == {"make": "Nikon"} and meta["note"] == "a, b"
    assert meta["region"] == "DE"  # other fields untouched
    assert store.meta_of(1) == meta


def test_set_meta_empty_value_removes_and_prunes_nested(store: Store) -> None:
    set_meta(store, 1, {"camera.make": "Nikon", "camera.body": "D850"})
    set_meta(store, 1, {"camera.make": ""})
    assert store.meta_of(1)["camera"] == {"body": "D850"}
    meta = set_meta(store, 1, {"camera.body": "", "region": "", "missing": ""})
    assert "camera" not in meta and "region" not in meta


def test_set_meta_wrong_type_names_field_and_writes_nothing(store: Store) -> None:
    declare_fields(store, {"rating": "number", "rights_expires": "date"})
    before = store.meta_of(1)
    with pytest.raises(FieldTypeError) as info:
        set_meta(store, 1, {"region": "CH", "rating": "five"})
    assert (info.value.field, info.value.expected, info.value.value) == ("meta.rating", "number", "five")
    assert "meta.rating must be a number, got 'five'" in str(info.value)
    with pytest.raises(FieldTypeError, match=r"meta\.rights_expires must be a date"):
        set_meta(store, 1, {"rights_expires": "next tuesday"})
    with pytest.raises(FieldTypeError, match=r"meta\.region holds 'DE', not fields"):
        set_meta(store, 1, {"region.code": "x"})
    assert store.meta_of(1) == before


def test_set_meta_unknown_asset_and_bad_names(store: Store) -> None:
    with pytest.raises(AssetNotFoundError):
        set_meta(store, 999, {"region": "DE"})
    with pytest.raises(FilterError, match="invalid field name"):
        set_meta(store, 1, {"no spaces": "x"})


# --- import ----------------------------------------------------------------------------------


def test_import_csv_matches_by_uri_path_and_hash(store: Store, tmp_path: Path) -> None:
    declare_fields(store, {"rating": "number", "keywords": "list"})
    csv_file = tmp_path / "files" / "sheet.csv"
    rows = [
        "uri,path,content_hash,campaign,rating,keywords,note",
        f'{uri(tmp_path, "photos/beach.jpg")},,,Sommer 2024,5,"sun, sand","He said ""hi"", then left"',
        ",videos/spring.mp4,,Frühling ☀,3,,",  # a relative path: read from the CSV's folder
        ',,h-beach,,,,"applies to both copies"',  # a hash held by two assets
        ",,,,,,orphan",  # no key at all
        f"{uri(tmp_path, 'nowhere.jpg')},,,x,,,",
        f"{uri(tmp_path, 'photos/shoe red.png')},,,Winter,five,,",
        f'{uri(tmp_path, "photos/shoe red.png")},,,"multi\nline",2,,',
        ",,nope-hash,x,,,",
        "",
        ',,h-spring,,,"[""a, b"", ""c""]",',  # a JSON array cell is a list
    ]
    csv_file.write_text("\n".join(rows) + "\n", encoding="utf-8")
    report = import_meta(store, csv_file)
    assert report.format == "csv" and report.rows == 9 and report.matched == 5
    assert report.unmatched == [(6, f"uri={uri(tmp_path, 'nowhere.jpg')}"), (10, "content_hash=nope-hash")]
    assert [line for line, _ in report.errors] == [5, 7]
    assert "no uri, path or content_hash" in report.errors[0][1]
    assert "meta.rating must be a number, got 'five'" in report.errors[1][1]
    assert report.fields == ["campaign", "rating", "keywords", "note"]
    beach = store.meta_of(1)
    assert (
        beach["campaign"] == "Sommer 2024" and beach["rating"] == 5 and beach["keywords"] == ["sun", "sand"]
    )
    assert beach["note"] == "applies to both copies" and store.meta_of(4)["note"] == "applies to both copies"
    spring = store.meta_of(3)
    assert (
        spring["campaign"] == "Frühling ☀" and spring["rating"] == 3 and spring["keywords"] == ["a, b", "c"]
    )
    shoe = store.meta_of(2)
    assert shoe["campaign"] == "multi\nline" and shoe["rating"] == 2  # the invalid row 7 was skipped whole
    assert report.updated == 4 and report.written


def test_import_csv_quoting_semicolons_and_empty_cells(store: Store, tmp_path: Path) -> None:
    csv_file = tmp_path / "excel.csv"
    # Excel in many locales: ';' separated, a BOM, CRLF line ends.
    text = (
        "\ufeffURI;region;title\r\n"
        + f'{uri(tmp_path, "photos/beach.jpg")};;"<Größe> & ""Sons"", Ltd; 1"\r\n'
    )
    csv_file.write_bytes(text.encode("utf-8"))
    report = import_meta(store, csv_file)
    assert report.matched == 1 and not report.errors
    meta = store.meta_of(1)
    assert meta["title"] == '<Größe> & "Sons", Ltd; 1'
    assert meta["region"] == "DE"  # an empty cell never clears a field


def test_import_csv_of_an_export_reads_only_meta_columns(store: Store, tmp_path: Path) -> None:
    csv_file = tmp_path / "export.csv"
    csv_file.write_text(
        f"id,uri,kind,meta.region,meta.camera.make\n1,{uri(tmp_path, 'photos/beach.jpg')},image,CH,Leica\n"
    )
    report = import_meta(store, csv_file)
    assert report.ignored == ["id", "kind"] and report.fields == ["region", "camera.make"]
    assert store.meta_of(1)["region"] == "CH" and store.meta_of(1)["camera"] == {"make": "Leica"}
    assert "kind" not in store.meta_of(1)


def test_import_jsonl_nested_flat_null_and_errors(store: Store, tmp_path: Path) -> None:
    declare_fields(store, {"rating": "number"})
    lines = [
        json.dumps({"uri": uri(tmp_path, "photos/beach.jpg"), "kind": "image",
                    "meta": {"sku": "00123", "rating": "4", "camera": {"make": "Nikon"}, "status": None,
                             "region": ""}}),
        json.dumps({"content_hash": "h-spring", "campaign": "Frühling", "tags": ["a", "b"]}),
        "",
        "{not json",
        json.dumps(["a list"]),
        json.dumps({"uri": uri(tmp_path, "photos/shoe red.png"), "meta": {"rating": "many"}}),
        json.dumps({"uri": "/elsewhere/x.jpg", "meta": {"a": 1}}),
        json.dumps({"path": "files/photos/shoe red.png", "meta": {"bad name": 1}}),
        json.dumps({"path": "files/photos/shoe red.png", "meta": {"ok": 1.5, "flag": True}}),
    ]  # fmt: skip
    jsonl = tmp_path / "meta.jsonl"
    jsonl.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = import_meta(store, jsonl)
    assert report.format == "jsonl" and report.rows == 8 and report.matched == 3
    assert report.unmatched == [(7, "uri=/elsewhere/x.jpg")]
    assert [line for line, _ in report.errors] == [4, 5, 6, 8]
    assert "not JSON" in report.errors[0][1] and "not a JSON object" in report.errors[1][1]
    assert "meta.rating must be a number" in report.errors[2][1]
    assert "invalid field name" in report.errors[3][1]
    assert report.ignored == ["kind"]
    beach = store.meta_of(1)
    assert beach["sku"] == "00123"  # JSON text stays text
    assert beach["rating"] == 4 and beach["camera"] == {"make": "Nikon"}
    assert beach["status"] is None and beach["region"] == ""  # JSON null and "" are values
    assert store.meta_of(3) == {"campaign": "Frühling", "tags": ["a", "b"]}
    assert store.meta_of(2)["ok"] == 1.5 and store.meta_of(2)["flag"] is True


def test_import_detects_format_by_content_and_dry_run_writes_nothing(store: Store, tmp_path: Path) -> None:
    data = tmp_path / "meta.txt"
    data.write_text(json.dumps({"uri": uri(tmp_path, "photos/beach.jpg"), "region": "CH"}) + "\n")
    report = import_meta(store, data, dry_run=True)
    assert report.format == "jsonl" and report.updated == 1 and not report.written
    assert store.meta_of(1)["region"] == "DE"
    assert import_meta(store, data).written and store.meta_of(1)["region"] == "CH"


def test_strict_import_writes_nothing_when_a_row_is_invalid(store: Store, tmp_path: Path) -> None:
    declare_fields(store, {"rating": "number"})
    data = tmp_path / "meta.csv"
    data.write_text(
        f"uri,rating\n{uri(tmp_path, 'photos/beach.jpg')},4\n{uri(tmp_path, 'videos/spring.mp4')},x\n"
    )
    report = import_meta(store, data, strict=True)
    assert not report.written and report.error_count == 1
    assert "rating" not in store.meta_of(1)


def test_import_refuses_files_it_cannot_read(store: Store, tmp_path: Path) -> None:
    no_key = tmp_path / "a.csv"
    no_key.write_text("name,region\nbeach,DE\n")
    with pytest.raises(MetaImportError, match="no uri, path or content_hash column"):
        import_meta(store, no_key)
    bad_column = tmp_path / "b.csv"
    bad_column.write_text("uri,Art Director\nx,y\n")
    with pytest.raises(MetaImportError, match="column 'Art Director'"):
        import_meta(store, bad_column)
    latin1 = tmp_path / "c.csv"
    latin1.write_bytes(f"uri,title\n{uri(tmp_path, 'photos/beach.jpg')},Gr\xf6\xdfe\n".encode("latin-1"))
    with pytest.raises(MetaImportError, match="not UTF-8"):
        import_meta(store, latin1)
    assert "title" not in store.meta_of(1)
    with pytest.raises(MetaImportError, match="no such file"):
        import_meta(store, tmp_path / "missing.csv")


def test_import_streams_a_large_file(store: Store, tmp_path: Path) -> None:
    data = tmp_path / "big.csv"
    with data.open("w") as f:
        f.write("content_hash,batch\n")
        for n in range(20_000):
            f.write(f"{'h-shoe' if n == 19_999 else f'unknown-{n}'},{n}\n")
    report = import_meta(store, data)
    assert report.rows == 20_000 and report.matched == 1 and report.unmatched_count == 19_999
    assert len(report.unmatched) == 1000  # listed up to a bound, all counted
    assert store.meta_of(2)["batch"] == 19_999


# --- facets ----------------------------------------------------------------------------------


def test_facets_of_builtin_fields(store: Store) -> None:
    assert facets(store, "kind") == [("image", 3), ("video", 1)]
    assert facets(store, "ingest_status") == [("ok", 4), ("failed", 1)]
    assert facets(store, "status") == [("approved", 1)]  # not a built-in: the DAM field meta.status
    assert facets(store, "width") == [(4000, 2), (1000, 1), (1920, 1)]
    assert facets(store, "duplicate") == [(False, 4), (True, 1)]
    assert facets(store, "ext") == [("jpg", 3), ("mp4", 1), ("png", 1)]
    assert facets(store, "created", by="year") == [("2024", 3), ("2023", 1)]
    assert facets(store, "created", by="month", limit=1) == [("2024-05", 2)]


def test_facets_of_meta_fields_follow_the_filter_rule(store: Store) -> None:
    # The copy's meta null hides its embedded DE; the video has only embedded FR.
    assert facets(store, "region") == [("AT", 1), ("DE", 1), ("FR", 1)]
    assert facets(store, "meta.keywords") == [
        ("summer", 2),
        ("beach", 1),
    ]  # list elements; meta over embedded
    assert facets(store, "camera") == [("Canon EOS 5D", 1)]
    set_meta(store, 2, {"rating": "4", "camera.make": "Nikon"})
    set_meta(store, 1, {"rating": "4.5"})
    assert facets(store, "rating") == [(4, 1), (4.5, 1)]
    assert facets(store, "camera.make") == [("Nikon", 1)]
    assert facets(store, "nothing") == []


def test_facets_of_tags_and_with_filters(store: Store) -> None:
    assert facets(store, "tag") == [("beach", 2), ("shoe", 2), ("red", 1)]
    assert facets(store, "tag", "kind:image") == [("shoe", 2), ("beach", 1), ("red", 1)]
    assert facets(store, "region", {"field": "kind", "eq": "image"}) == [("AT", 1), ("DE", 1)]
    assert facets(store, "keywords", "region:DE") == [("beach", 1), ("summer", 1)]
    assert facets(store, "kind", "tag:beach created>=2024-06-01") == [("video", 1)]


def test_facets_refuse_bad_input(store: Store) -> None:
    with pytest.raises(FilterError):
        facets(store, "bad name")
    with pytest.raises(FilterError, match="not a date"):
        facets(store, "width", by="year")
    with pytest.raises(FilterError):
        facets(store, "kind", "created>=")
    with pytest.raises(FilterError, match="limit"):
        facets(store, "kind", limit=0)


# --- command line ----------------------------------------------------------------------------


def test_cli_meta_set_schema_and_facets(store: Store, tmp_path: Path) -> None:
    result = run_cli(tmp_path, "meta", "schema", "set", "rating=number", "due=date", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["schema"] == {"rating": "number", "due": "date"}
    result = run_cli(tmp_path, "meta", "schema", "show")
    assert result.output.splitlines() == ["due: date", "rating: number"]

    result = run_cli(tmp_path, "meta", "set", uri(tmp_path, "photos/beach.jpg"), "rating=5", "due=2025-01-31",
                 "note=a=b", "region=", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["id"] == 1 and doc["meta"]["rating"] == 5 and doc["meta"]["note"] == "a=b"
    assert "region" not in doc["meta"]
    result = run_cli(tmp_path, "meta", "set", "2", "camera.make=Nikon")
    assert result.exit_code == 0 and "camera.make: Nikon" in result.output

    result = run_cli(tmp_path, "meta", "set", "1", "rating=five")
    assert result.exit_code == 1
    assert result.output.strip() == "error: meta.rating must be a number, got 'five'"
    assert run_cli(tmp_path, "meta", "set", "1", "novalue").exit_code == 2
    assert run_cli(tmp_path, "meta", "set", "/no/such/file.jpg", "a=1").exit_code == 1

    result = run_cli(tmp_path, "facets", "tag", "--filter", "kind:image", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["assets"] == 3 and doc["filter"] == {"field": "kind", "eq": "image"}
    assert doc["values"] == [{"value": "shoe", "count": 2}, {"value": "beach", "count": 1},
                             {"value": "red", "count": 1}]  # fmt: skip
    result = run_cli(
        tmp_path, "facets", "kind", "--filter", '{"field": "ingest_status", "eq": "ok"}', "--limit", "1"
    )
    assert result.output.split() == ["image", "3"]
    result = run_cli(tmp_path, "facets", "kind", "--filter", "created>=nonsense")
    assert result.exit_code == 1 and result.output.startswith("error: ")


def test_cli_meta_import(store: Store, tmp_path: Path) -> None:
    data = tmp_path / "sheet.csv"
    data.write_text(f"uri,campaign,rating\n{uri(tmp_path, 'photos/beach.jpg')},Sommer,5\n/x.jpg,y,1\n")
    result = run_cli(tmp_path, "meta", "import", str(data))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[:2] == [
        "2 rows: 1 matched, 1 assets updated, 1 unmatched, 0 invalid",
        "  line 3: no asset for uri=/x.jpg",
    ]
    result = run_cli(tmp_path, "meta", "import", str(data), "--json", "--dry-run")
    doc = json.loads(result.output)
    assert doc["unmatched"] == [{"line": 3, "key": "uri=/x.jpg"}] and doc["written"] is False
    run_cli(tmp_path, "meta", "schema", "set", "rating=number")
    data.write_text(f"uri,rating\n{uri(tmp_path, 'photos/beach.jpg')},x\n")
    result = run_cli(tmp_path, "meta", "import", str(data), "--strict")
    assert result.exit_code == 1 and "line 2: meta.rating must be a number" in result.output
    assert run_cli(tmp_path, "meta", "import", "--help").exit_code == 0
