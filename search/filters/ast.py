"""The filter AST, its limits and the checks every reader shares (shape, size, length).

Both syntaxes (``search.filters.syntax`` for the string form, ``search.filters`` for JSON) build
these nodes; ``search.filters.sql`` compiles them. Values stay as written here: typing happens
when compiling.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from assetlens.search.errors import FilterError

OPS = ("eq", "ne", "in", "nin", "gt", "gte", "lt", "lte", "exists", "prefix")
MAX_INPUT = 10_000  # characters of a string or JSON-text filter
MAX_DEPTH = 32  # nesting of and/or/not (and of parentheses / NOT in the string form)
MAX_TERMS = 256  # field comparisons, tags and text matches
MAX_LIST = 1000  # values of one in/nin list
MAX_VALUES = 2000  # values in the whole filter (keeps SQL parameters bounded)
MAX_STRING = 1000  # characters of one value


@dataclass(frozen=True)
class Cmp:
    """``field op value``: ``field`` is a built-in name or ``meta.NAME``; ``in``/``nin`` take a tuple."""

    field: str
    op: str
    value: Any


@dataclass(frozen=True)
class TagIs:
    """The asset has the tag (case-insensitive), with at least ``min_score`` when given."""

    tag: str
    min_score: float | None = None


@dataclass(frozen=True)
class TextMatch:
    """Every word of ``text`` is in the asset's transcript (one segment) or its text index."""

    text: str


@dataclass(frozen=True)
class OcrMatch:
    """Every word of ``text`` is in the text read in the asset's pictures (OCR); None: any text was read.

    Written ``ocr:"harvest market"`` / ``ocr:*``, or ``{"field": "ocr", "eq": "harvest market"}`` /
    ``{"field": "ocr", "exists": true}``.
    """

    text: str | None = None


@dataclass(frozen=True)
class NearDuplicateOf:
    """The asset is a near-duplicate of one of ``asset_ids``: in its group, and not that asset.

    Written ``near_duplicate_of:12`` / ``near_duplicate_of:(12 OR 40)``, or
    ``{"field": "near_duplicate_of", "eq": 12}`` / ``{"field": "near_duplicate_of", "in": [12, 40]}``.
    """

    asset_ids: tuple[int, ...]


@dataclass(frozen=True)
class And:
    items: tuple[Filter, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Filter, ...]


@dataclass(frozen=True)
class Not:
    item: Filter


Filter: TypeAlias = Cmp | TagIs | TextMatch | OcrMatch | NearDuplicateOf | And | Or | Not


# --- shared checks ---------------------------------------------------------------------------


def _check_shape(f: Any) -> None:
    """Depth, size and node types of an AST, iteratively (no recursion on untrusted input)."""
    stack, terms = [(f, 1)], 0
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise FilterError(f"filter nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, And | Or):
            if not node.items:
                raise FilterError(f"empty {type(node).__name__.lower()} group")
            stack.extend((item, depth + 1) for item in node.items)
        elif isinstance(node, Not):
            stack.append((node.item, depth + 1))
        elif isinstance(node, Cmp | TagIs | TextMatch | OcrMatch | NearDuplicateOf):
            terms += 1
            if terms > MAX_TERMS:
                raise FilterError(f"filter has more than {MAX_TERMS} terms")
            if isinstance(node, Cmp) and node.op not in OPS:
                raise FilterError(f"unknown operator {node.op!r} (valid: {', '.join(OPS)})")
            listed = isinstance(node, Cmp) and isinstance(node.value, tuple | list)
            if isinstance(node, NearDuplicateOf) and not 0 < len(node.asset_ids) <= MAX_LIST:
                raise FilterError(f"near_duplicate_of takes 1 to {MAX_LIST} asset ids")
            if (
                isinstance(node, Cmp)
                and node.op in ("in", "nin")
                and not (listed and 0 < len(node.value) <= MAX_LIST)
            ):
                raise FilterError(f"{node.field}: {node.op} takes a list of 1 to {MAX_LIST} values")
        else:
            raise FilterError(f"not a filter node: {type(node).__name__}")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_length(text: str) -> None:
    if len(text) > MAX_INPUT:
        raise FilterError(f"filter is {len(text)} characters long; the limit is {MAX_INPUT}")


class _Budget:
    """Counts terms and values as a parser goes, so huge inputs stop early."""

    def __init__(self) -> None:
        self.terms = self.values = 0

    def spend(self, terms: int, values: int) -> str | None:
        self.terms += terms
        self.values += values
        if self.terms > MAX_TERMS:
            return f"filter has more than {MAX_TERMS} terms"
        if self.values > MAX_VALUES:
            return f"filter has more than {MAX_VALUES} values"
        return None
