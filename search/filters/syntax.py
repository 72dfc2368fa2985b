"""The string filter syntax (people, CLI), parsed to the AST of ``search.filters.ast``.

``OR`` binds loosest, then ``AND`` (or plain juxtaposition), then ``NOT``/``-``::

    filter = or ;   or = and { "OR" and } ;   and = unary { ["AND"] unary } ;
    unary  = ("NOT" | "-") unary | "(" or ")" | term ;
    term   = "tag" (":" | "=") ( value [">=" number] | "(" value { "OR" value } ")" )
           | "ocr" (":" | "=" | "!=") ( "*" | value )
           | "near_duplicate_of" (":" | "=" | "!=") ( id | "(" id { "OR" id } ")" )
           | name (":" | "=") ( "*" | "(" value { "OR" value } ")" | value ["*"] )
           | name "!=" ( "*" | "(" value { "OR" value } ")" | value )
           | name (">" | ">=" | "<" | "<=") value
           | word | quoted ;
    name   = [A-Za-z_][A-Za-z0-9_.-]* ;   value = quoted | characters up to a space or ")" ;
    quoted = '"' { character | '\\"' | '\\\\' } '"' ;

A name that is not a built-in field (``search.filters.sql.BUILTIN_FIELDS``) means ``meta.NAME``
(``-status:draft`` excludes drafts by ``meta.status``; the ingest result is ``ingest_status``);
a word or quoted phrase is a text match. ``ocr:WORDS`` matches the text read in the pictures
(every word, case and accents ignored), ``ocr:*`` any asset with such text.
``near_duplicate_of:ID`` (or ``:(ID OR ID)``) matches the other members of an asset's
near-duplicate group; ``near_duplicate:true`` any asset in a group.
"""

from __future__ import annotations

import re

from assetlens.search.errors import FieldTypeError, FilterError
from assetlens.search.filters.ast import (
    MAX_DEPTH,
    MAX_LIST,
    MAX_STRING,
    And,
    Cmp,
    Filter,
    NearDuplicateOf,
    Not,
    OcrMatch,
    Or,
    TagIs,
    TextMatch,
    _Budget,
    _check_length,
    _check_shape,
    _show,
)
from assetlens.search.filters.fields import parse_number
from assetlens.search.filters.sql import (
    NEAR_DUPLICATE_OF,
    _canonical_field,
    _check_builtin,
    _check_text,
    near_duplicate_ids,
)

_NAME_OP = re.compile(r"([A-Za-z_][A-Za-z0-9_.-]*)(>=|<=|!=|:|=|>|<)")
_COMPARE = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}
_KEYWORDS = ("OR", "AND", "NOT")
OCR_FIELD = "ocr"
"""The filter field of the text read in pictures: a full-text match, not a column."""


def parse_string(text: str) -> Filter:
    """Parse the string form (see the module docstring for the grammar).

    Raises:
        FilterError: Malformed, with ``position`` (0-based; the message says column
            ``position + 1``), the text and a caret under the fault.
    """
    if not isinstance(text, str):
        raise FilterError(f"a string filter must be text, got {type(text).__name__}")
    _check_length(text)
    if not text.strip():
        raise FilterError("empty filter")
    return _StringParser(text).parse()


class _StringParser:
    def __init__(self, text: str) -> None:
        self.text, self.pos, self.budget = text, 0, _Budget()

    def fail(self, message: str, pos: int | None = None, exc: FilterError | None = None) -> FilterError:
        """An error at ``pos`` showing the text around it with a caret (``exc``: reword that error)."""
        at = self.pos if pos is None else pos
        start, end = max(0, at - 40), min(len(self.text), at + 40)
        lead, tail = ("..." if start else ""), ("..." if end < len(self.text) else "")
        snippet = "".join(" " if c.isspace() else c for c in self.text[start:end])
        caret = f"\n  {lead}{snippet}{tail}\n  {' ' * (len(lead) + at - start)}^"
        text = f"at column {at + 1}: {message if exc is None else exc}{caret}"
        if isinstance(exc, FieldTypeError):
            return FieldTypeError(exc.field, exc.expected, exc.value, message=text, position=at)
        return FilterError(text, position=at)

    def spend(self, pos: int, terms: int, values: int) -> None:
        if (problem := self.budget.spend(terms, values)) is not None:
            raise self.fail(problem, pos)

    # -- characters

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def boundary(self, at: int) -> bool:
        return at >= len(self.text) or self.text[at].isspace() or self.text[at] in "()"

    def keyword(self) -> str | None:
        for word in _KEYWORDS:
            if self.text.startswith(word, self.pos) and self.boundary(self.pos + len(word)):
                return word
        return None

    def at_end_of_group(self) -> bool:
        return self.pos >= len(self.text) or self.peek() == ")" or self.keyword() == "OR"

    # -- grammar

    def parse(self) -> Filter:
        node = self.or_expr(0)
        self.skip_space()
        if self.pos < len(self.text):
            raise self.fail(
                "unexpected ')' with no '(' to close" if self.peek() == ")" else "unexpected text"
            )
        _check_shape(node)
        return node

    def or_expr(self, depth: int) -> Filter:
        items = [self.and_expr(depth)]
        while self.keyword() == "OR":
            self.pos += 2
            self.skip_space()
            if self.at_end_of_group():
                raise self.fail("dangling OR: expected a term after OR")
            items.append(self.and_expr(depth))
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self, depth: int) -> Filter:
        items = [self.unary(depth)]
        while True:
            self.skip_space()
            if self.at_end_of_group():
                break
            if self.keyword() == "AND":
                self.pos += 3
                self.skip_space()
                if self.at_end_of_group():
                    raise self.fail("dangling AND: expected a term after AND")
            items.append(self.unary(depth))
        return items[0] if len(items) == 1 else And(tuple(items))

    def unary(self, depth: int) -> Filter:
        self.skip_space()
        if depth >= MAX_DEPTH:
            raise self.fail(f"nested deeper than {MAX_DEPTH} levels (parentheses and NOT)")
        start, char, word = self.pos, self.peek(), self.keyword()
        if not char:
            raise self.fail("expected a term, found the end of the filter")
        if word == "NOT" or (char == "-" and not self.boundary(start + 1)):
            self.pos += 3 if word == "NOT" else 1
            self.skip_space()
            if not self.peek():
                raise self.fail("expected a term after NOT")
            return Not(self.unary(depth + 1))
        if word is not None:
            raise self.fail(f"{word} needs a term on its left")
        if char == "(":
            self.pos += 1
            self.skip_space()
            if self.peek() == ")":
                raise self.fail("empty parentheses")
            node = self.or_expr(depth + 1)
            self.skip_space()
            if self.peek() != ")":
                raise self.fail(f"expected ')' to close the '(' at column {start + 1}")
            self.pos += 1
            return node
        if char == ")":
            raise self.fail("unexpected ')' with no '(' to close")
        if char == '"':
            return self.text_term(self.quoted(), start)
        if m := _NAME_OP.match(self.text, self.pos):
            return self.field_term(m)
        while not self.boundary(self.pos):
            self.pos += 1
        return self.text_term(self.text[start : self.pos], start)

    def text_term(self, text: str, start: int) -> Filter:
        self.spend(start, 1, 1)
        if len(text) > MAX_STRING:
            raise self.fail(f"text longer than {MAX_STRING} characters", start)
        try:
            _check_text(text)
        except FilterError as exc:
            raise self.fail("", start, exc) from None
        return TextMatch(text)

    def quoted(self) -> str:
        start, out = self.pos, []
        self.pos += 1
        while self.pos < len(self.text):
            c = self.text[self.pos]
            if c == "\\" and self.text[self.pos + 1 : self.pos + 2] in ('"', "\\"):
                out.append(self.text[self.pos + 1])
                self.pos += 2
            elif c == '"':
                self.pos += 1
                return "".join(out)
            else:
                out.append(c)
                self.pos += 1
        raise self.fail("unterminated quote: no closing '\"' for this one", start)

    def value(self, after: str) -> tuple[str, bool]:
        """A value right after an operator: (text, was quoted)."""
        start = self.pos
        if self.peek() == '"':
            text, quoted = self.quoted(), True
        else:
            while self.pos < len(self.text) and not self.text[self.pos].isspace() and self.peek() != ")":
                self.pos += 1
            text, quoted = self.text[start : self.pos], False
            if not text:
                space = (
                    " (no space after the operator; quote values with spaces)"
                    if self.peek().isspace()
                    else ""
                )
                raise self.fail(f"expected a value after '{after}'{space}")
        if len(text) > MAX_STRING:
            raise self.fail(f"value longer than {MAX_STRING} characters", start)
        return text, quoted

    def group(self, after: str) -> tuple[str, ...]:
        """``(a OR b OR "c d")`` after an operator."""
        start, values = self.pos, list[str]()
        self.pos += 1
        while True:
            self.skip_space()
            if self.peek() == ")" and not values:
                raise self.fail("empty value list")
            values.append(self.value(after)[0])
            if len(values) > MAX_LIST:
                raise self.fail(f"more than {MAX_LIST} values in one list", start)
            self.skip_space()
            if self.peek() == ")":
                self.pos += 1
                return tuple(values)
            if self.keyword() != "OR":
                raise self.fail(f"expected OR or ')' in the value list opened at column {start + 1}")
            self.pos += 2
            self.skip_space()
            if self.peek() in ("", ")"):
                raise self.fail("dangling OR: expected a value after OR")

    def field_term(self, m: re.Match[str]) -> Filter:
        start, (name, sign) = self.pos, m.groups()
        self.pos = m.end()
        if name == "tag":
            return self.tag_term(sign, start)
        if name == OCR_FIELD:
            return self.ocr_term(sign, start)
        if name == NEAR_DUPLICATE_OF:
            return self.near_duplicate_term(sign, start)
        try:
            field = _canonical_field(name)
        except FilterError as exc:
            raise self.fail("", start, exc) from None
        value_at, after = self.pos, name + sign
        negate = sign == "!="
        if sign in (":", "=", "!=") and self.peek() == "*" and self.boundary(self.pos + 1):
            self.pos += 1
            cmp = Cmp(field, "exists", True)
        elif sign in (":", "=", "!=") and self.peek() == "(":
            cmp, negate = Cmp(field, "nin" if negate else "in", self.group(after)), False
        elif sign in (":", "="):
            text, quoted = self.value(after)
            star = quoted and self.peek() == "*" and self.boundary(self.pos + 1)
            if star or (not quoted and text.endswith("*")):
                self.pos += 1 if star else 0
                cmp = Cmp(field, "prefix", text if star else text[:-1])
            else:
                cmp = Cmp(field, "eq", text)
        else:
            cmp, negate = Cmp(field, "ne" if negate else _COMPARE[sign], self.value(after)[0]), False
        self.spend(start, 1, len(cmp.value) if isinstance(cmp.value, tuple) else 1)
        try:
            _check_builtin(cmp.field, cmp.op, cmp.value)
        except FilterError as exc:
            raise self.fail("", value_at, exc) from None
        return Not(cmp) if negate else cmp

    def ocr_term(self, sign: str, start: int) -> Filter:
        if sign not in (":", "=", "!="):
            raise self.fail(
                'text read in pictures is matched with ocr:WORDS, ocr:"a phrase", ocr:* or -ocr:WORDS', start
            )
        self.spend(start, 1, 1)
        if self.peek() == "*" and self.boundary(self.pos + 1):
            self.pos += 1
            node = OcrMatch()
        else:
            value_at = self.pos
            text = self.value(sign)[0]
            try:
                _check_text(text)
            except FilterError as exc:
                raise self.fail("", value_at, exc) from None
            node = OcrMatch(text)
        return Not(node) if sign == "!=" else node

    def near_duplicate_term(self, sign: str, start: int) -> Filter:
        if sign not in (":", "=", "!="):
            raise self.fail(
                "near-duplicates are matched with near_duplicate_of:ID or near_duplicate_of:(ID OR ID)", start
            )
        value_at = self.pos
        values = self.group(sign) if self.peek() == "(" else (self.value(sign)[0],)
        self.spend(start, 1, len(values))
        try:
            node = NearDuplicateOf(near_duplicate_ids(values))
        except FilterError as exc:
            raise self.fail("", value_at, exc) from None
        return Not(node) if sign == "!=" else node

    def tag_term(self, sign: str, start: int) -> Filter:
        if sign not in (":", "="):
            raise self.fail("tags are written tag:NAME, tag:NAME>=SCORE or -tag:NAME", start)
        if self.peek() == "(":
            names = self.group("tag:")
            self.spend(start, len(names), len(names))
            tags = tuple(TagIs(n) for n in names)
            return tags[0] if len(tags) == 1 else Or(tags)
        value_at = self.pos
        name, quoted = self.value("tag:")
        score: str | None = None
        if quoted and self.text.startswith(">=", self.pos):
            self.pos += 2
            score = self.value(">=")[0]
        elif not quoted and ">=" in name:
            name, score = name.rsplit(">=", 1)
        self.spend(start, 1, 1)
        if not name.strip() or (name == "*" and not quoted):
            raise self.fail("expected a tag name after 'tag:'", value_at)
        if score is None:
            return TagIs(name)
        number = parse_number(score)
        if number is None:
            raise self.fail(f"a tag's minimum score must be a number, got {_show(score)}", value_at)
        return TagIs(name, float(number))
