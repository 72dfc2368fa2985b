"""The near-duplicate terms of both filter syntaxes: ``near_duplicate`` and ``near_duplicate_of``."""

from __future__ import annotations

import pytest

from assetlens.search.errors import FilterError
from assetlens.search.filters import Cmp, NearDuplicateOf, Not, compile_filter, parse_filter, to_json


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("near_duplicate_of:12", NearDuplicateOf((12,))),
        ("near_duplicate_of=12", NearDuplicateOf((12,))),
        ("near_duplicate_of:(3 OR 4 OR 3)", NearDuplicateOf((3, 4))),
        ("-near_duplicate_of:5", Not(NearDuplicateOf((5,)))),
        ("near_duplicate_of!=5", Not(NearDuplicateOf((5,)))),
        ('{"field": "near_duplicate_of", "eq": 12}', NearDuplicateOf((12,))),
        ('{"field": "near_duplicate_of", "in": [3, "4"]}', NearDuplicateOf((3, 4))),
        ('{"field": "near_duplicate_of", "nin": [3]}', Not(NearDuplicateOf((3,)))),
        ("near_duplicate:true", Cmp("near_duplicate", "eq", "true")),
        ('{"field": "near_duplicate", "eq": false}', Cmp("near_duplicate", "eq", False)),
    ],
)
def test_both_syntaxes_give_one_tree_that_round_trips(text: str, expected: object) -> None:
    parsed = parse_filter(text)
    assert parsed == expected
    assert parse_filter(to_json(parsed)) == parsed
    compile_filter(parsed)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("near_duplicate_of:x", "asset ids"),
        ("near_duplicate_of:0", "asset ids"),
        ("near_duplicate_of:1.5", "asset ids"),
        ("near_duplicate_of>3", "near_duplicate_of:ID"),
        ("near_duplicate_of:", "expected a value"),
        ('{"field": "near_duplicate_of", "eq": true}', "asset ids"),
        ('{"field": "near_duplicate_of", "gt": 3}', "one of eq"),
        ('{"field": "near_duplicate_of", "in": []}', "list of 1 to"),
        ("near_duplicate:maybe", "boolean"),
        ("near_duplicate>1", "true or false"),
        ("near_duplicate_of:'; DROP TABLE assets; --", "asset ids"),
    ],
)
def test_bad_terms_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        compile_filter(parse_filter(text))
