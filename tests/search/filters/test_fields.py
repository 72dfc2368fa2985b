"""The meta field schema and date normalisation."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from assetlens.search.errors import FieldTypeError, FilterError
from assetlens.search.filters.fields import FIELD_TYPES, FieldSchema, infer_type, parse_date

NOW = datetime(2024, 1, 31, 15, 45, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01", "2024-05-01"),
        ("2024-05", "2024-05"),
        ("2024", "2024"),
        ("2024-05-01T10:30", "2024-05-01T10:30:00"),
        ("2024-05-01 10:30:15", "2024-05-01T10:30:15"),
        ("2024-05-01T10:30:00Z", "2024-05-01T10:30:00"),
        ("2024-05-01T10:30:00.987654Z", "2024-05-01T10:30:00"),
        ("2024-05-01T01:30:00+02:00", "2024-04-30T23:30:00"),
        ("2023-12-31T23:30:00-0200", "2024-01-01T01:30:00"),
        (" 2024-02-29 ", "2024-02-29"),
        ("now", "2024-01-31T15:45:30"),
        ("NOW", "2024-01-31T15:45:30"),
        ("today", "2024-01-31"),
        ("now-30d", "2024-01-01T15:45:30"),
        ("now+1y", "2025-01-31T15:45:30"),
        ("now-12h", "2024-01-31T03:45:30"),
        ("now-2w", "2024-01-17T15:45:30"),
        ("now+1m", "2024-02-29T15:45:30"),  # calendar months clamp to the month's last day
        ("now-6m", "2023-07-31T15:45:30"),
        ("now-1y-6m", "2022-07-31T15:45:30"),
        ("today-7d", "2024-01-24"),
        ("today+1m", "2024-02-29"),
        ("today-1h", "2024-01-30T23:00:00"),
    ],
)
def test_parse_date_normalises_to_comparable_iso(text: str, expected: str) -> None:
    assert parse_date(text, NOW) == expected


def test_parse_date_reads_now_in_utc() -> None:
    berlin = NOW.astimezone(timezone(timedelta(hours=1)))
    assert parse_date("now", berlin) == parse_date("now", NOW) == "2024-01-31T15:45:30"
    assert parse_date("now", NOW.replace(tzinfo=None)) == "2024-01-31T15:45:30"
    assert parse_date("now") <= datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def test_iso_strings_of_every_granularity_sort_in_time_order() -> None:
    # Why the normalised forms are strings: lexicographic order is time order, and a period
    # prefix sorts at its start.
    ordered = ["2023", "2023-12-31T23:59:59", "2024", "2024-01", "2024-01-01", "2024-01-01T00:00:00",
               "2024-01-01T00:00:01", "2024-02", "2024-10-01"]  # fmt: skip
    assert ordered == sorted(parse_date(t) for t in ordered)


@pytest.mark.parametrize(
    "text",
    ["soon", "", "2024-13-01", "2024-02-30", "2024-05-01T25:00", "20240501", "now-30x", "now - 30d",
     "yesterday", "now-1000000d", "now+9999999y", "2024-05-01T10:30:00+25:99x", "x" * 200,
     "2024-05-01T10:60"],
)  # fmt: skip
def test_parse_date_refuses_garbage_with_a_clear_message(text: str) -> None:
    with pytest.raises(FilterError, match=r"not a (valid )?date"):
        parse_date(text, NOW)


def test_parse_date_refuses_non_text() -> None:
    with pytest.raises(FilterError):
        parse_date(20240501, NOW)  # type: ignore[arg-type]


SCHEMA = FieldSchema(
    {"rights_expires": "date", "rating": "number", "approved": "boolean", "keywords": "list", "sku": "string"}
)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("rights_expires", "2024-01-05", "2024-01-05"),
        ("meta.rights_expires", "2024-01-05T10:00:00+01:00", "2024-01-05T09:00:00"),
        ("rights_expires", date(2024, 1, 5), "2024-01-05"),
        ("rights_expires", datetime(2024, 1, 5, 8, 0, tzinfo=UTC), "2024-01-05T08:00:00"),
        ("rights_expires", "now+1y", "2025-01-31T15:45:30"),
        ("rating", "12.5", 12.5),
        ("rating", " 12 ", 12),
        ("rating", 3, 3),
        ("rating", -1.5e3, -1500.0),
        ("approved", "true", True),
        ("approved", "Yes", True),
        ("approved", "off", False),
        ("approved", 0, False),
        ("approved", True, True),
        ("keywords", "summer, beach,,  sea ", ["summer", "beach", "sea"]),
        ("keywords", ["summer", 2024, True], ["summer", "2024", "true"]),
        ("keywords", [], []),
        ("sku", "00123", "00123"),
        ("sku", 123, "123"),
        ("undeclared", "12.5", 12.5),
        ("undeclared", "00123", 123),
        ("undeclared", "TRUE", True),
        ("undeclared", "false", False),
        ("undeclared", "yes", "yes"),
        ("undeclared", "2024-01-05", "2024-01-05"),
        ("undeclared", "spring", "spring"),
        ("undeclared", "nan", "nan"),
        ("undeclared", ["a", 1], ["a", 1]),
        ("undeclared", {"make": "Nikon"}, {"make": "Nikon"}),
        ("undeclared", None, None),
        ("undeclared", 7, 7),
    ],
)
def test_coerce_validates_and_normalises(name: str, value: Any, expected: Any) -> None:
    assert SCHEMA.coerce(name, value, now=NOW) == expected


@pytest.mark.parametrize(
    ("name", "value", "expected", "message"),
    [
        ("rights_expires", "soon", "date",
         "meta.rights_expires must be a date (YYYY-MM-DD or ISO datetime), got 'soon'"),
        ("rights_expires", 20240105, "date", "meta.rights_expires must be a date"),
        ("rating", "high", "number", "meta.rating must be a number, got 'high'"),
        ("rating", True, "number", "meta.rating must be a number, got True"),
        ("rating", float("inf"), "number", "meta.rating must be a number"),
        ("rating", "inf", "number", "meta.rating must be a number"),
        ("approved", "maybe", "boolean", "meta.approved must be a boolean (true/false, yes/no), got 'maybe'"),
        ("approved", 2, "boolean", "meta.approved must be a boolean"),
        ("keywords", {"a": 1}, "list", "meta.keywords must be a list (or a comma-separated string)"),
        ("keywords", [["nested"]], "list", "meta.keywords must be a list"),
        ("sku", ["a"], "string", "meta.sku must be a string"),
        ("undeclared", object(), "string", "meta.undeclared must be a string"),
    ],
)  # fmt: skip
def test_coerce_refuses_values_of_the_wrong_type(name: str, value: Any, expected: str, message: str) -> None:
    with pytest.raises(FieldTypeError) as err:
        SCHEMA.coerce(name, value, now=NOW)
    assert str(err.value).startswith(message)
    assert err.value.field == f"meta.{name}" and err.value.expected == expected and err.value.value is value
    assert isinstance(err.value, FilterError)


def test_long_values_are_shortened_in_messages() -> None:
    with pytest.raises(FieldTypeError) as err:
        SCHEMA.coerce("rating", "x" * 10_000)
    assert len(str(err.value)) < 200


def test_schema_round_trips_through_a_dict() -> None:
    d = {
        "rights_expires": "date",
        "camera.make": "string",
        "tags-2": "list",
        "n_1": "number",
        "ok": "boolean",
    }
    schema = FieldSchema.from_dict(d)
    assert schema.as_dict() == d
    assert FieldSchema.from_dict(schema.as_dict()) == schema
    assert schema.type_of("meta.camera.make") == "string" and schema.type_of("missing") is None
    assert FieldSchema.from_dict({"meta.region": "string"}).as_dict() == {"region": "string"}
    with pytest.raises(TypeError):
        schema.types["x"] = "date"  # type: ignore[index]


def test_unknown_types_and_bad_names_are_refused() -> None:
    with pytest.raises(FieldTypeError) as err:
        FieldSchema.from_dict({"rights_expires": "datetime"})
    assert "unknown field type 'datetime'" in str(err.value)
    assert all(t in str(err.value) for t in FIELD_TYPES)
    for name in ("", "a b", "a..b", ".a", "a.", "é", "x'; DROP TABLE assets; --", "a" * 201):
        with pytest.raises(FilterError):
            FieldSchema.from_dict({name: "string"})
    with pytest.raises(FilterError):
        FieldSchema.from_dict(["rating"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "kind"),
    [("12", "number"), ("-1.5e3", "number"), ("2024", "number"), ("true", "boolean"), ("False", "boolean"),
     ("2024-05-01", "date"), ("2024-05", "date"), ("2024-05-01T10:00Z", "date"), ("now-30d", "date"),
     ("today", "date"), ("yes", "string"), ("DE", "string"), ("2024-13-01", "string"), ("", "string")],
)  # fmt: skip
def test_undeclared_values_take_the_type_they_look_like(text: str, kind: str) -> None:
    assert infer_type(text) == kind
