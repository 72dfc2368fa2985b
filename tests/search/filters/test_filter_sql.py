"""Compiled SQL on a real SQLite store: field semantics, meta precedence, schema types, injection."""

from __future__ import annotations

import re

import pytest
from filter_cases import EVIL, NOW, ids

from assetlens.search.errors import FieldTypeError, FilterError
from assetlens.search.filters import (
    BUILTIN_FIELDS,
    Cmp,
    Filter,
    Not,
    Or,
    TextMatch,
    compile_filter,
    fts_query,
    parse_json,
    parse_string,
)
from assetlens.search.filters.fields import FieldSchema
from assetlens.search.store import Asset, Store


def test_status_is_the_meta_field_and_ingest_status_the_built_in(
    library: tuple[Store, list[Asset]],
) -> None:
    store, assets = library
    drafts = {a.id for a in assets if a.meta.get("status") == "draft"}
    assert drafts == {2, 12}
    assert "status" not in BUILTIN_FIELDS and BUILTIN_FIELDS["ingest_status"].sql == "a.status"

    f = parse_string("-status:draft")
    assert f == Not(Cmp("meta.status", "eq", "draft"))
    sql, params = compile_filter(f, now=NOW)
    assert "a.meta" in sql and "a.status" not in sql and '$."status"' in params
    assert ids(store, f) == {a.id for a in assets} - drafts  # the failed ingest (no meta) included
    assert ids(store, parse_string("ingest_status:failed")) == {5}


def test_typed_json_values_select_what_their_text_selects(library: tuple[Store, list[Asset]]) -> None:
    store, _ = library
    for text, typed in [
        ("rating>=4", 4),
        ("rating:4", 4.0),
        ("size>100000", 100_000),
        ("featured:true", True),
    ]:
        name, op = (
            re.split(r">=|:|>", text)[0],
            {">=": "gte", ":": "eq", ">": "gt"}[re.findall(r">=|:|>", text)[0]],
        )
        field = name if name in BUILTIN_FIELDS else f"meta.{name}"
        assert ids(store, parse_json({"field": field, op: typed})) == ids(store, parse_string(text)), text


def test_user_meta_overrides_embedded_metadata(library: tuple[Store, list[Asset]]) -> None:
    store, _ = library
    # Asset 8 sets region null in its own meta: the embedded "DE" is hidden, not a fallback.
    assert 8 not in ids(store, parse_string("region:DE"))
    assert ids(store, parse_string("camera:Canon*")) == {1}  # embedded only
    assert ids(store, parse_string("keywords:sea")) == set()  # asset 1's own keywords win
    assert ids(store, parse_string("keywords:summer")) == {1, 11}  # asset 11: embedded keywords


def test_schema_types_coerce_values_and_pick_the_comparison(library: tuple[Store, list[Asset]]) -> None:
    store, _ = library
    schema = FieldSchema({"rights_expires": "date", "code": "string", "sku": "string", "rating": "number"})

    assert ids(store, parse_string("code>5"), schema) == {15}  # text order: "9" > "5" > "10"
    assert ids(store, parse_string("code>5")) == set()  # undeclared: a number, stored as text
    assert ids(store, parse_string("sku:00123"), schema) == {21}
    assert ids(store, parse_string("sku:00123")) == {20, 21}
    with pytest.raises(
        FieldTypeError,
        match=r"meta\.rights_expires must be a date \(YYYY-MM-DD or ISO datetime\), "
        r"got 'soon'",
    ) as err:
        compile_filter(parse_string("rights_expires>soon"), schema=schema)
    assert err.value.field == "meta.rights_expires" and err.value.expected == "date"
    with pytest.raises(FieldTypeError, match=r"meta\.rating must be a number, got 'high'"):
        compile_filter(parse_string("rating:high"), schema=schema)
    with pytest.raises(FilterError, match=r"meta\.flag is true or false"):
        compile_filter(parse_string("flag>true"), schema=FieldSchema({"flag": "boolean"}))
    with pytest.raises(FilterError, match="prefix"):
        compile_filter(parse_string("rating:4*"), schema=schema)


def test_injection_attempts_stay_data(library: tuple[Store, list[Asset]]) -> None:
    store, _ = library
    before = store.db.execute("SELECT count(*) FROM assets").fetchone()[0]
    attempts: list[Filter] = [
        parse_string(f'title:"{EVIL}"'),
        parse_string('"' + EVIL + '"'),
        parse_json({"field": "meta.title", "in": [EVIL, '"', "'", "\\", "%", "_"]}),
        parse_json({"field": "uri", "prefix": EVIL}),
        parse_json({"tag": EVIL, "min_score": 0.1}),
        parse_json({"text": 'say "hi" OR NEAR(a b) * ^col: -x'}),
        parse_string('"a \\" b" OR c:"\\\\"'),
        parse_string("filename:%_* title:'*"),
    ]
    for f in attempts:
        sql, params = compile_filter(f, now=NOW)
        assert EVIL not in sql and "DROP" not in sql
        store.db.execute(f"SELECT a.id FROM assets a WHERE {sql}", params).fetchall()
    assert ids(store, parse_string("filename:%_*")) == set()  # LIKE wildcards are plain characters
    for name in (EVIL, "a'b", 'a"b', "x) OR 1=1 --", "meta.", "meta..x", "a/b", "ä"):
        with pytest.raises(FilterError):
            parse_json({"field": name, "eq": 1})
        with pytest.raises(FilterError):
            compile_filter(Cmp("meta." + name, "eq", 1))
    with pytest.raises(FilterError, match="takes a list"):
        compile_filter(Cmp("meta.x", "in", EVIL))
    assert store.db.execute("SELECT count(*) FROM assets").fetchone()[0] == before


def test_fts_query_quotes_every_word() -> None:
    assert (
        fts_query('spring "collection" NEAR(x) OR *')
        == '"spring" AND "collection" AND "NEAR" AND "x" AND "OR"'
    )
    assert fts_query("Größe 日本") == '"Größe" AND "日本"'
    assert fts_query(" ?! ") is None


def test_text_with_no_words_compiles_to_false(library: tuple[Store, list[Asset]]) -> None:
    store, _ = library
    assert ids(store, TextMatch("?!")) == set()
    assert ids(store, Or((TextMatch("?!"), Cmp("id", "eq", 1)))) == {1}
