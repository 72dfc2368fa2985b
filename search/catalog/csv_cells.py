"""One value in one CSV cell: how ``assetlens export`` writes it and ``meta import`` reads it back.

Written: text as is, true/false, numbers and objects as JSON, None empty; lists of plain values
joined when the caller gives a joiner, else a JSON array (read back as a list).

A cell that a spreadsheet would run as a formula (text starting with ``=``, ``+``, ``-``, ``@``,
tab or carriage return, such as a file name or a caption ``=HYPERLINK(...)``) is written with a
leading ``'``, so Excel and LibreOffice show it as text (CSV injection, CWE-1236); reading removes
that quote again. Plain numbers (``-5``, ``-1.5e3``) are not formulas and are written as they are.
"""

from __future__ import annotations

import json
import re
from typing import Any

# What spreadsheets treat as the start of a formula in a cell.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][-+]?\d+)?")


def cell_text(value: Any, joiner: str | None = None) -> str:
    """A value as the text of one cell (before :func:`guard_formula`)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if joiner is not None and isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
        return joiner.join(cell_text(v) for v in value)
    return json.dumps(value, ensure_ascii=False)


def guard_formula(text: str) -> str:
    """``'`` before a cell a spreadsheet would evaluate as a formula.

    Quotes already there count too (``'=x`` is written ``''=x``), so :func:`read_cell` gives back
    exactly what was written.
    """
    if text.lstrip("'").startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def read_cell(text: str) -> Any:
    """A cell as written by the export: the formula guard removed, JSON arrays and objects parsed."""
    if text.startswith("'") and text.lstrip("'").startswith(FORMULA_STARTS):
        return text[1:]
    if text.lstrip()[:1] in ("[", "{"):
        try:
            value = json.loads(text)
        except ValueError:
            return text
        if isinstance(value, list | dict):
            return value
    return text
