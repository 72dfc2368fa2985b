"""The optional field schema of DAM metadata (``meta``) and the value rules shared with filters.

A schema declares the type of some ``meta`` fields (``{"rights_expires": "date"}``). Values
written to a declared field are validated and normalised by :meth:`FieldSchema.coerce`; filters
on it compare with that type. Undeclared fields take the type their value looks like.

Dates are kept as ISO 8601 strings so that comparing them as strings orders them in time:

* :func:`parse_date` returns ``YYYY-MM-DDTHH:MM:SS`` (UTC, no zone suffix) for a moment, and
  the shorter ``YYYY-MM-DD`` / ``YYYY-MM`` / ``YYYY`` for a whole day, month or year.
* Filters normalise stored values to ``YYYY-MM-DDTHH:MM:SS`` in SQL (``strftime``, which also
  converts ``+02:00`` or ``Z`` offsets to UTC) and compare them with the period
  ``[P, P + "~")`` of a value ``P``: every normalised moment of the day ``2024-05-01`` starts
  with that prefix, and ``"~"`` sorts after every character of an ISO string, so
  ``created <= 2024-05-01`` includes the whole day and ``created > 2024-05-01`` starts at the next.
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType
from typing import Any, Literal, get_args

from assetlens.search.errors import FieldTypeError, FilterError

FieldType = Literal["string", "number", "date", "boolean", "list"]
FIELD_TYPES: tuple[str, ...] = get_args(FieldType)

# One or more dot-separated segments (a dot nests: meta.camera.make -> $."camera"."make").
META_NAME = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")
MAX_NAME = 200
NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
FALSE_WORDS = frozenset({"false", "no", "off", "0"})

_ISO = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,]\d+)?)?"
    r"(Z|z|[+-]\d{2}:?\d{2})?)?)?)?"
)
_RELATIVE = re.compile(r"(now|today)((?:[+-]\d{1,6}[ymwdh])*)", re.IGNORECASE)
_OFFSET = re.compile(r"([+-])(\d{1,6})([ymwdh])", re.IGNORECASE)
_MOMENT = "%Y-%m-%dT%H:%M:%S"


def parse_date(text: str, now: datetime | None = None) -> str:
    """Normalise a date, a datetime or a relative date to a comparable ISO string.

    Args:
        text: ``2024-05-01``, ``2024-05``, ``2024``, an ISO datetime (``2024-05-01T10:30``,
            ``...:00Z``, ``...+02:00``; a space may replace the T), or ``now`` / ``today`` with
            offsets in years, months, weeks, days or hours: ``now-30d``, ``today+1y``,
            ``now-12h``, ``now-6m`` (months), ``now-1y-6m``.
        now: The current moment (default: the clock); naive values are taken as UTC.

    Returns:
        ``YYYY-MM-DDTHH:MM:SS`` in UTC for a moment (datetimes, ``now``, hour offsets), else
        the period as written: ``YYYY-MM-DD`` (also ``today`` with y/m/w/d offsets),
        ``YYYY-MM`` or ``YYYY``. Zone-less datetimes are taken as UTC; fractions of a second
        are dropped.

    Raises:
        FilterError: Not a date, or out of range.
    """
    value = text.strip() if isinstance(text, str) else text
    if not isinstance(value, str) or len(value) > 100:
        raise FilterError(f"not a date: {_short(text)}")
    try:
        if rel := _RELATIVE.fullmatch(value):
            return _relative(rel[1].lower(), rel[2], now)
        if iso := _ISO.fullmatch(value):
            return _absolute(iso)
    except (ValueError, OverflowError) as exc:
        raise FilterError(f"not a valid date: {_short(text)} ({exc})") from exc
    raise FilterError(
        f"not a date: {_short(text)} (expected YYYY-MM-DD, an ISO datetime, or now/today "
        f"with offsets such as now-30d, now+1y, now-12h, now-2w, now-6m)"
    )


def _absolute(m: re.Match[str]) -> str:
    year, month, day, hour, minute, second, zone = m.groups()
    if month is None:
        date(int(year), 1, 1)
        return year
    if day is None:
        date(int(year), int(month), 1)
        return f"{year}-{month}"
    if hour is None:
        return date(int(year), int(month), int(day)).isoformat()
    moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0))
    if zone and zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        moment -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return moment.strftime(_MOMENT)


def _relative(anchor: str, offsets: str, now: datetime | None) -> str:
    current = now or datetime.now(UTC)
    if current.tzinfo is not None:
        current = current.astimezone(UTC).replace(tzinfo=None)
    moment = current.replace(microsecond=0)
    if anchor == "today":
        moment = moment.replace(hour=0, minute=0, second=0)
    for sign, amount, unit in _OFFSET.findall(offsets):
        n = int(amount) * (1 if sign == "+" else -1)
        unit = unit.lower()
        if unit in ("y", "m"):
            moment = _add_months(moment, n * 12 if unit == "y" else n)
        else:
            moment += timedelta(**{{"w": "weeks", "d": "days", "h": "hours"}[unit]: n})
    # today with whole-day offsets still names a whole day; now (or any hour offset) a moment.
    if anchor == "today" and "h" not in offsets.lower():
        return moment.date().isoformat()
    return moment.strftime(_MOMENT)


def _add_months(moment: datetime, months: int) -> datetime:
    # Calendar months: Jan 31 + 1m is the last day of February, not March 3.
    years, month0 = divmod(moment.month - 1 + months, 12)
    year = moment.year + years
    day = min(moment.day, calendar.monthrange(year, month0 + 1)[1]) if 1 <= year <= 9999 else moment.day
    return moment.replace(year=year, month=month0 + 1, day=day)


def looks_like_date(text: str) -> bool:
    """Whether an undeclared value reads as a date: ISO with at least year and month, or now/today."""
    value = text.strip()
    if len(value) > 100 or not (_RELATIVE.fullmatch(value) or _ISO.fullmatch(value)):
        return False
    if value.isdigit():
        return False  # a bare year is a number unless the field is declared a date
    try:
        parse_date(value)
    except FilterError:
        return False
    return True


def parse_number(value: Any) -> int | float | None:
    """A finite number from a number or numeric text (int when integral text), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str) and NUMBER.fullmatch(text := value.strip()):
        if re.fullmatch(r"[+-]?\d+", text) and len(text) <= 18:
            return int(text)
        number = float(text)
        return number if math.isfinite(number) else None
    return None


def parse_boolean(value: Any) -> bool | None:
    """True/False from a bool, 0/1, or true/false, yes/no, on/off (any case); else None."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    return None


def infer_type(text: str) -> Literal["number", "boolean", "date", "string"]:
    """The type an undeclared text value reads as: number, true/false, ISO or relative date, else string."""
    if parse_number(text) is not None:
        return "number"
    if text.strip().lower() in ("true", "false"):
        return "boolean"
    return "date" if looks_like_date(text) else "string"


def coerce_value(label: str, kind: str | None, value: Any, now: datetime | None = None) -> Any:
    """Validate and normalise ``value`` for a field of type ``kind`` (None: undeclared).

    Args:
        label: The field as users write it, for messages (``meta.rights_expires``).
        kind: A :data:`FieldType`, or None to infer the type from a text value.
        value: The value to store or compare.
        now: The current moment for relative dates.

    Raises:
        FieldTypeError: The value does not fit the type.
    """
    if kind == "string":
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if parse_number(value) is not None:
            return str(value)
    elif kind == "number":
        if (number := parse_number(value)) is not None:
            return number
    elif kind == "boolean":
        if (flag := parse_boolean(value)) is not None:
            return flag
    elif kind == "date":
        if isinstance(value, datetime | date):
            value = value.isoformat()
        try:
            return parse_date(value, now)
        except FilterError:
            pass
    elif kind == "list":
        items = value.split(",") if isinstance(value, str) else value
        if isinstance(items, list | tuple) and all(_scalar(x) for x in items):
            texts = [coerce_value(label, "string", x).strip() for x in items]
            return [t for t in texts if t]
    elif kind is None:
        if isinstance(value, str):
            inferred = infer_type(value)
            if inferred == "number":
                return parse_number(value)
            if inferred == "boolean":
                return value.strip().lower() == "true"
            return value  # ISO dates stay strings: they already compare in time order
        if value is None or _scalar(value) or isinstance(value, dict):
            return value
        if isinstance(value, list | tuple) and all(_scalar(x) for x in value):
            return list(value)
    else:
        raise FieldTypeError(label, "string", value, message=f"{label} has unknown type {kind!r}")
    raise FieldTypeError(label, kind or "string", value)


def _scalar(value: Any) -> bool:
    return isinstance(value, str | bool | int) or (isinstance(value, float) and math.isfinite(value))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_meta_name(name: str) -> str:
    """Return a ``meta`` field name (without ``meta.``) if it is valid.

    Raises:
        FilterError: Empty, too long, or with characters other than letters, digits, ``_ - .``.
    """
    if not isinstance(name, str) or not name:
        raise FilterError("empty field name")
    if len(name) > MAX_NAME or not META_NAME.fullmatch(name):
        raise FilterError(
            f"invalid field name {_short(name)}: use letters, digits, '_' and '-', with '.' between "
            f"nested names (at most {MAX_NAME} characters)"
        )
    return name


def meta_path(name: str) -> str:
    """The SQLite JSON path of a ``meta`` field (``a.b`` -> ``$."a"."b"``), the name checked first.

    Raises:
        FilterError: As :func:`check_meta_name`.
    """
    return "$" + "".join(f'."{part}"' for part in check_meta_name(name).split("."))


@dataclass(frozen=True)
class FieldSchema:
    """Declared types of ``meta`` fields; fields not declared take the type their value looks like.

    Attributes:
        types: Meta field name (without ``meta.``; dots nest) to :data:`FieldType`.
    """

    types: Mapping[str, FieldType] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        checked: dict[str, FieldType] = {}
        for name, kind in self.types.items():
            bare = name.removeprefix("meta.")
            check_meta_name(bare)
            if kind not in FIELD_TYPES:
                raise FieldTypeError(
                    f"meta.{bare}",
                    "string",
                    kind,
                    message=f"meta.{bare}: unknown field type {_short(kind)} "
                    f"(valid: {', '.join(FIELD_TYPES)})",
                )
            checked[bare] = kind
        # Read-only copy: a frozen schema must not change under a compiled filter.
        object.__setattr__(self, "types", MappingProxyType(checked))

    def type_of(self, name: str) -> FieldType | None:
        """The declared type of a meta field (``meta.`` prefix optional), None if undeclared."""
        return self.types.get(name.removeprefix("meta."))

    def coerce(self, name: str, value: Any, *, now: datetime | None = None) -> Any:
        """Validate and normalise a value for the meta field ``name``.

        Declared fields: ``string`` (numbers and booleans become text), ``number`` (``"12.5"``
        -> 12.5), ``date`` (ISO or relative -> see :func:`parse_date`), ``boolean`` (true/yes/on/1
        and false/no/off/0), ``list`` (a list or comma-separated text -> list of strings).
        Undeclared fields: numeric text -> number, true/false -> bool, anything else (ISO dates
        included) stays text; JSON values pass through.

        Raises:
            FieldTypeError: The value does not fit the declared type.
        """
        bare = name.removeprefix("meta.")
        return coerce_value(f"meta.{bare}", self.type_of(bare), value, now)

    def as_dict(self) -> dict[str, str]:
        """The schema as ``{name: type}`` (JSON-ready)."""
        return dict(self.types)

    @classmethod
    def from_dict(cls, d: Mapping[str, str]) -> FieldSchema:
        """Build a schema from ``{name: type}``.

        Raises:
            FieldTypeError: A type that is not one of string, number, date, boolean, list.
            FilterError: An invalid field name.
        """
        if not isinstance(d, Mapping):
            raise FilterError(f"a field schema is an object of name -> type, got {_short(d)}")
        return cls(dict(d))  # type: ignore[arg-type]  # __post_init__ validates the types


def flatten_fields(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested objects as dotted names (the same names the filters and ``meta set`` use)."""
    if not isinstance(value, dict):
        return {prefix: value} if prefix else {}
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        out |= flatten_fields(item, name) if isinstance(item, dict) and item else {name: item}
    return out
