"""Writing systems of text: which script a letter belongs to, and the ``ASSETLENS_OCR_LANGS`` setting.

OCR keeps a line only when most of its letters are in a configured script (see
:mod:`models.ocr`); digits and punctuation belong to every script. A script is named directly
(:data:`SCRIPTS`) or through an ISO 639-1 language code written in it.
"""

from __future__ import annotations

import unicodedata

from assetlens.models.errors import OcrError

__all__ = ["SCRIPTS", "in_scripts", "parse_langs", "script_of"]

SCRIPTS = ("latin", "greek", "cyrillic", "cjk", "arabic", "hebrew", "devanagari", "thai")
"""Scripts ``ASSETLENS_OCR_LANGS`` may name (the shipped recogniser reads Latin, Greek and CJK)."""
# Common ISO 639-1 codes, by the script they are written in.
_SCRIPT_LANGS = {
    "latin": "en de fr es it pt nl sv da no nb fi pl cs sk sl hr hu ro tr et lv lt id ms vi ca eu ga is",
    "greek": "el",
    "cyrillic": "ru uk be bg sr mk kk",
    "cjk": "zh ja ko",
    "arabic": "ar fa ur",
    "hebrew": "he",
    "devanagari": "hi mr ne",
    "thai": "th",
}
_LANG_SCRIPT = {code: script for script, codes in _SCRIPT_LANGS.items() for code in codes.split()}
# First word(s) of a letter's Unicode name -> script.
_NAME_SCRIPT = {
    "LATIN": "latin",
    "FULLWIDTH LATIN": "latin",
    "GREEK": "greek",
    "CYRILLIC": "cyrillic",
    "CJK": "cjk",
    "HIRAGANA": "cjk",
    "KATAKANA": "cjk",
    "HALFWIDTH KATAKANA": "cjk",
    "HANGUL": "cjk",
    "HALFWIDTH HANGUL": "cjk",
    "ARABIC": "arabic",
    "HEBREW": "hebrew",
    "DEVANAGARI": "devanagari",
    "THAI": "thai",
}


def parse_langs(value: str) -> frozenset[str]:
    """The scripts named by an ``ASSETLENS_OCR_LANGS`` value.

    Args:
        value: Comma- or space-separated script names (:data:`SCRIPTS`) or ISO 639-1 codes.

    Returns:
        The set of script names.

    Raises:
        OcrError: A name that is neither a known script nor a known language code, or none.
    """
    scripts = set()
    for name in value.replace(",", " ").lower().split():
        script = name if name in SCRIPTS else _LANG_SCRIPT.get(name)
        if script is None:
            raise OcrError(
                f"ASSETLENS_OCR_LANGS: unknown script or language {name!r}; use scripts "
                f"({', '.join(SCRIPTS)}) or ISO 639-1 codes (en, de, fr, el, ru, zh, ja, ...)"
            )
        scripts.add(script)
    if not scripts:
        raise OcrError("ASSETLENS_OCR_LANGS is empty; name at least one script, e.g. 'latin'")
    return frozenset(scripts)


def script_of(char: str) -> str | None:
    """The script of a letter (None for digits, punctuation, symbols and unknown scripts)."""
    if not char.isalpha():
        return None
    name = unicodedata.name(char, "")
    for words in (" ".join(name.split()[:2]), name.split(" ", 1)[0]):
        if words in _NAME_SCRIPT:
            return _NAME_SCRIPT[words]
    return None


def in_scripts(text: str, scripts: frozenset[str]) -> bool:
    """Whether at least half of the letters of ``text`` are in ``scripts`` (True without letters)."""
    found = [script_of(c) for c in text if c.isalpha()]
    if not found:
        return True
    return sum(s in scripts for s in found) * 2 >= len(found)
