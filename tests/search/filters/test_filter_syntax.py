"""Parsing both syntaxes: the string grammar, JSON documents, error positions and paths, limits."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from filter_cases import ids

from assetlens.search.errors import FilterError, QueryError
from assetlens.search.filters import (
    And,
    Cmp,
    Filter,
    Not,
    Or,
    TagIs,
    TextMatch,
    compile_filter,
    parse_filter,
    parse_json,
    parse_string,
    to_json,
)
from assetlens.search.store import Asset, Store


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("kind:image (a OR b", 19, "expected ')' to close the '(' at column 12"),
        ("kind:image)", 11, "unexpected ')'"),
        ("a OR", 5, "dangling OR"),
        ("a OR OR b", 6, "dangling OR"),
        ("OR a", 1, "OR needs a term on its left"),
        ("a AND", 6, "dangling AND"),
        ("a NOT", 6, "expected a term after NOT"),
        ("()", 2, "empty parentheses"),
        ("kind:", 6, "expected a value after 'kind:'"),
        ("kind: image", 6, "no space after the operator"),
        (":x meta.:y", 4, "empty field name"),
        (":x a..b:y", 4, "invalid field name"),
        ("size>big", 6, "size must be a number, got 'big'"),
        ("created>soon", 9, "created must be a date"),
        ("created:2024-13-01", 9, "created must be a date"),
        ('title:"abc', 7, "unterminated quote"),
        ('"abc', 1, "unterminated quote"),
        ("region:(DE OR AT", 17, "expected OR or ')' in the value list opened at column 8"),
        ("region:(DE AT)", 12, "expected OR or ')'"),
        ("region:(DE OR )", 15, "dangling OR"),
        ("region:()", 9, "empty value list"),
        ("tag:", 5, "expected a value after 'tag:'"),
        ("tag:shoe>=high", 5, "minimum score must be a number"),
        ("tag>0.3", 1, "tags are written tag:NAME"),
        ("size:12*", 6, "prefix (*) applies to text and dates"),
        ("transcribed>true", 13, "transcribed is true or false"),
        ("kind:image !!!", 12, "'!!!' has no letters or digits"),
    ],
)
def test_malformed_strings_are_refused_with_their_column(text: str, column: int, fragment: str) -> None:
    with pytest.raises(FilterError) as err:
        parse_string(text)
    assert fragment in str(err.value)
    assert err.value.position == column - 1
    assert f"at column {column}:" in str(err.value)
    # The message shows the text with a caret under the fault.
    shown, caret = str(err.value).splitlines()[-2:]
    assert shown.strip() == text.strip() and caret.index("^") == shown.index(text[0]) + column - 1


@pytest.mark.parametrize(
    ("doc", "path", "fragment"),
    [
        (
            {"and": [{"field": "kind", "eq": "image"}, {"tag": "x"}, {"field": "kind", "equals": "image"}]},
            "$.and[2].field",
            "unknown operator 'equals' (valid: eq, ne, in, nin, gt, gte, lt, lte, exists, prefix)",
        ),
        ({"field": "kind"}, "$", "exactly one operator"),
        ({"field": "kind", "eq": "image", "ne": "video"}, "$", "exactly one operator"),
        ({"field": "", "eq": 1}, "$.field", "empty field name"),
        ({"field": "a b", "eq": 1}, "$.field", "invalid field name"),
        ({"field": "tag", "eq": "shoe"}, "$.field", "'tag' is not a field"),
        ({"or": []}, "$.or", "non-empty list"),
        ({"and": {"field": "kind"}}, "$.and", "non-empty list"),
        ({"not": {"field": "created", "gt": "someday"}}, "$.not.gt", "created must be a date"),
        ({"field": "meta.region", "in": "DE"}, "$.in", "expected a list"),
        ({"field": "meta.region", "in": ["DE", None]}, "$.in[1]", "expected a string, number or boolean"),
        ({"field": "meta.region", "eq": None}, "$.eq", "use exists"),
        ({"field": "meta.region", "exists": "yes"}, "$.exists", "expected true or false"),
        ({"tag": "shoe", "min_score": "high"}, "$.min_score", "expected a number"),
        ({"tag": "shoe", "score": 1}, "$", "unknown keys ['score']"),
        ({"text": "?!"}, "$.text", "no letters or digits"),
        ({"and": [{"field": "kind", "eq": "image"}], "or": []}, "$", "must be the only key"),
        ({"regex": ".*"}, "$", "unknown filter"),
        (["kind"], "$", "expected a filter object"),
    ],
)
def test_malformed_json_is_refused_with_its_path(doc: Any, path: str, fragment: str) -> None:
    with pytest.raises(FilterError) as err:
        parse_json(doc)
    assert err.value.path == path
    assert str(err.value).startswith(f"{path}: ")
    assert fragment in str(err.value)


def test_invalid_json_text_is_a_filter_error() -> None:
    with pytest.raises(FilterError, match="invalid JSON filter at line 1 column"):
        parse_filter('{"field": "kind", "eq": }')
    assert isinstance(FilterError("x"), QueryError)


def test_huge_and_deep_inputs_are_filter_errors_not_crashes() -> None:
    deep_text = "(" * 10_000 + "a" + ")" * 10_000
    deep_doc: dict[str, Any] = {"text": "a"}
    for _ in range(10_000):
        deep_doc = {"not": deep_doc}
    cases: list[Callable[[], object]] = [
        lambda: parse_string("x" * 1_000_000),
        lambda: parse_string(f'title:"{"x" * 1_000_000}"'),
        lambda: parse_string(deep_text),
        lambda: parse_string("(" * 40 + "a" + ")" * 40),
        lambda: parse_string("-" * 40 + "a"),
        lambda: parse_string("NOT " * 40 + "a"),
        lambda: parse_json(deep_doc),
        lambda: parse_json("[" * 5000 + "]" * 5000),
        lambda: parse_json('{"not":' * 2000 + '{"text": "a"}' + "}" * 2000),
        lambda: parse_string(" ".join(f"w{i}" for i in range(300))),
        lambda: parse_string("region:(" + " OR ".join(str(i) for i in range(1001)) + ")"),
        lambda: parse_json({"field": "meta.x", "in": list(range(1001))}),
        lambda: parse_json({"or": [{"field": "meta.x", "in": list(range(1000))} for _ in range(3)]}),
        lambda: parse_json({"field": "meta.x", "eq": "y" * 1001}),
        lambda: compile_filter(deep_doc_ast()),
        lambda: to_json(deep_doc_ast()),
    ]
    for case in cases:
        with pytest.raises(FilterError):
            case()


def deep_doc_ast() -> Filter:
    f: Filter = TextMatch("a")
    for _ in range(10_000):
        f = Not(f)
    return f


def test_limits_allow_what_people_write(library: tuple[Store, list[Asset]]) -> None:
    assert parse_string("(" * 30 + "a" + ")" * 30) == TextMatch("a")
    assert len(parse_json({"field": "meta.x", "in": list(range(1000))}).value) == 1000  # type: ignore[union-attr]
    big = parse_string(" ".join(f"w{i}" for i in range(256)))
    assert isinstance(big, And) and len(big.items) == 256
    _, params = compile_filter(
        parse_json({"field": "created", "in": [f"2024-01-{d:02d}" for d in range(1, 29)] * 35})
    )
    assert len(params) == 2 * 28 * 35
    # Balanced OR groups: SQLite's expression depth limit (1000) is never reached.
    assert ids(
        library[0], parse_json({"field": "created", "in": [f"2024-01-{d:02d}" for d in range(1, 29)] * 35})
    ) == {3}


def test_string_syntax_details() -> None:
    assert parse_string("a b OR c") == Or((And((TextMatch("a"), TextMatch("b"))), TextMatch("c")))
    assert parse_string("a AND b") == parse_string("a b") == And((TextMatch("a"), TextMatch("b")))
    assert parse_string("or and not") == And((TextMatch("or"), TextMatch("and"), TextMatch("not")))
    assert parse_string('title:"say \\"hi\\" \\\\ C:\\path"') == Cmp(
        "meta.title", "eq", 'say "hi" \\ C:\\path'
    )
    assert parse_string('title:"ab"*') == Cmp("meta.title", "prefix", "ab")
    assert parse_string('title:"a*"') == Cmp("meta.title", "eq", "a*")
    assert parse_string("url:http://x.org/a:b") == Cmp("meta.url", "eq", "http://x.org/a:b")
    assert parse_string("kind=image") == Cmp("kind", "eq", "image")
    assert parse_string("region!=*") == Not(Cmp("meta.region", "exists", True))
    assert parse_string('tag:"red shoe">=0.3') == TagIs("red shoe", 0.3)
    assert parse_string("tag:(shoe)") == TagIs("shoe")
    assert parse_string("  kind:image\t\n") == Cmp("kind", "eq", "image")
    assert parse_string("NOT(a)") == Not(TextMatch("a"))
    assert parse_string("日本語 región:ÄÖ") == And((TextMatch("日本語"), TextMatch("región:ÄÖ")))
    assert parse_string("región_x:ÄÖ") == TextMatch("región_x:ÄÖ")
    assert parse_string("r.x:ÄÖ") == Cmp("meta.r.x", "eq", "ÄÖ")


def test_parse_filter_dispatches_and_treats_empty_as_no_filter() -> None:
    assert parse_filter(None) is None and parse_filter("") is None and parse_filter("  ") is None
    assert parse_filter(' {"tag": "x"}') == TagIs("x")
    assert parse_filter({"tag": "x"}) == TagIs("x")
    assert parse_filter("tag:x") == TagIs("x")
    with pytest.raises(FilterError, match="empty filter"):
        parse_string(" ")
    with pytest.raises(FilterError):
        parse_filter(42)  # type: ignore[arg-type]


def test_to_json_is_canonical_and_json_ready() -> None:
    f = parse_string("kind:image -region:(DE OR AT) tag:x>=0.5 size>10 created:* spring")
    assert to_json(f) == {
        "and": [
            {"field": "kind", "eq": "image"},
            {"not": {"field": "meta.region", "in": ["DE", "AT"]}},
            {"tag": "x", "min_score": 0.5},
            {"field": "size", "gt": "10"},
            {"field": "created", "exists": True},
            {"text": "spring"},
        ]
    }
    assert parse_json({"field": "meta.x", "exists": False}) == Not(Cmp("meta.x", "exists", True))
